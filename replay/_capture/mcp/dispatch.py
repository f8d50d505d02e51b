"""MCP requests as events: a client session's dispatcher, recorded and replayed.

``send_raw_request`` of the SDK's dispatchers is replaced; it records (or serves)
the requests of the dispatchers a ``ClientSession`` registered, and passes any
other dispatcher's (a server's) through. See :mod:`replay._capture.mcp` for the
event's shape.

What the server sends while a request waits is kept as the request's chunks, in
arrival order, JSON: ``["progress", progress, total, message]`` for the call's
``progress_callback``, ``["notify", method, params]`` for every notification the
session routes to its callbacks (logging, ``message_handler``). Replay delivers
them again, in that order, before the call returns. A notification is the
request's when it came on that request's HTTP stream, else (stdio) when that
request was the last one sent still waiting.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import sys
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from replay._capture import exc as _exc
from replay._capture import values as _values
from replay._capture.mcp.transports import OPEN, ServerNotStartedError
from replay._capture.session import BUSY, PARENT, Pending, current
from replay._cassette.events import Chunk, Event, Value

CHANNEL = "mcp"
"""The channel of every MCP request but ``tools/call``."""
TOOL_METHOD = "tools/call"
STAMPED_META = frozenset({
    "io.modelcontextprotocol/protocolVersion", "io.modelcontextprotocol/clientInfo",
    "io.modelcontextprotocol/clientCapabilities", "io.modelcontextprotocol/logLevel",
    "progressToken", "traceparent", "tracestate",
})
"""``params._meta`` keys the SDK adds by itself: not part of what the agent asked."""
IN_PROCESS = "in-process"
UNKNOWN = "unknown"
"""The label of a server reached by streams no wrapped transport made."""
HANDSHAKE = frozenset({"initialize", "server/discover"})
"""Requests that open a session: also sent live when a run that records replays them."""


class _Peer:
    """What is known of a client session's dispatcher."""

    __slots__ = ("dead", "in_flight", "label", "session")

    def __init__(self, label: str, dead: bool, session: Any) -> None:
        self.label = label
        self.dead = dead
        """Its streams go nowhere (strict replay): nothing may be sent on them."""
        self.session: Callable[[], Any] = weakref.ref(session)
        self.in_flight: dict[int, tuple[Pending, list[Chunk]]] = {}
        """The requests waiting for the server (record), by event, with their chunks."""


_PEERS: weakref.WeakKeyDictionary[object, _Peer] = weakref.WeakKeyDictionary()


def _peer_of(dispatcher: object) -> _Peer | None:
    try:
        return _PEERS.get(dispatcher)
    except TypeError:
        return None


def session_init(original: Any) -> Any:
    """``ClientSession.__init__``: remember the session's dispatcher and its server."""
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        dispatcher = vars(self).get("_dispatcher")
        if dispatcher is None:
            return
        stream = args[0] if args else kwargs.get("read_stream")
        if stream is None:
            stream = getattr(dispatcher, "_read_stream", None)
        found = OPEN.get(id(stream))
        if found is not None and found[0] is stream:
            peer = _Peer(found[1], found[2], self)
        elif type(dispatcher).__name__ == "DirectDispatcher":
            peer = _Peer(IN_PROCESS, False, self)
        else:
            peer = _Peer(UNKNOWN, False, self)
        with contextlib.suppress(TypeError):
            _PEERS[dispatcher] = peer
    return __init__


def request_of(server: str, method: str, params: Any) -> tuple[str, dict[str, Value]]:
    """The channel and request of an MCP request (see the module's docstring)."""
    rest = dict(params) if isinstance(params, Mapping) else {}
    meta = rest.pop("_meta", None)
    if isinstance(meta, dict):
        mine = {k: v for k, v in meta.items() if k not in STAMPED_META}
        if mine:
            rest["_meta"] = mine
    request: dict[str, Value] = {"method": method, "server": server}
    channel = CHANNEL
    if method == TOOL_METHOD:
        name = rest.pop("name", None)
        channel = f"tool:{name}"
        request["name"] = name if isinstance(name, str) else _values.canonical(name)
        request["args"] = _values.canonical(rest.pop("arguments", None) or {})
    if rest:
        request["params"] = _values.canonical(rest)
    return channel, request


async def _as_callback(parent: int | None, fn: Callable[..., Awaitable[Any]],
                       *args: Any) -> Any:
    """Run a callback the server drove: recorded (``BUSY`` cleared), nested under
    ``parent``."""
    busy = BUSY.set(False)
    nested = PARENT.set(parent)
    try:
        return await fn(*args)
    finally:
        PARENT.reset(nested)
        BUSY.reset(busy)


def _mcp_error() -> type[BaseException] | None:
    module = sys.modules.get("mcp.shared.exceptions")
    cls = getattr(module, "MCPError", None)
    return cls if isinstance(cls, type) and issubclass(cls, BaseException) else None


def _cancelled() -> type[BaseException]:
    import anyio

    return anyio.get_cancelled_exc_class()


def _chunk(pending: Pending, *item: Any) -> Chunk:
    return Chunk(json.dumps(_values.canonical(list(item))).encode(), pending.elapsed_ns())


async def _record(pending: Pending, peer: _Peer, send: Callable[[Any], Awaitable[Any]],
                  opts: Any) -> Any:
    """Run the request live; the event gets its result or error, and what came with it."""
    chunks: list[Chunk] = []
    on_progress = opts.get("on_progress") if isinstance(opts, dict) else None
    if on_progress is not None:
        async def tee(progress: float, total: float | None, message: str | None) -> None:
            chunks.append(_chunk(pending, "progress", progress, total, message))
            await _as_callback(pending.seq, on_progress, progress, total, message)
        opts = {**opts, "on_progress": tee}
    peer.in_flight[pending.seq] = (pending, chunks)
    busy = BUSY.set(True)
    nested = PARENT.set(pending.seq)  # carried into the callbacks the transport runs
    try:
        raw = await send(opts)
    except BaseException as exc:
        mcp_error = _mcp_error()
        if mcp_error is not None and isinstance(exc, mcp_error):
            error = getattr(exc, "error", None)
            dump = getattr(error, "model_dump", None)
            data = dump(mode="json", by_alias=True, exclude_none=True) if dump else {
                "code": getattr(exc, "code", None), "message": str(exc)}
            pending.fail(exc, response={"error": _values.canonical(data)}, chunks=tuple(chunks))
        elif isinstance(exc, _cancelled()):
            pending.fail(exc, response={"cancelled": True}, chunks=tuple(chunks))
        else:
            pending.fail(exc, chunks=tuple(chunks))
        raise
    finally:
        PARENT.reset(nested)
        BUSY.reset(busy)
        peer.in_flight.pop(pending.seq, None)
    pending.finish(_values.strict(raw, f"the result of MCP {pending.channel}"),
                   chunks=tuple(chunks))
    return raw


def _rebuild(event: Event) -> BaseException:
    """The recorded error again: an ``MCPError`` with its code, message and data."""
    assert event.error is not None
    response = event.response if isinstance(event.response, dict) else {}
    data = response.get("error")
    base = _mcp_error()
    cls = _exc.resolve_type(event.error.type)
    if base is None or cls is None or not issubclass(cls, base) or not isinstance(data, dict):
        return _exc.rebuild(event.error, event.seq)
    code, message = data.get("code"), data.get("message")
    error: Any = cls.__new__(cls)
    base.__init__(error, int(code) if isinstance(code, int) else 0, str(message),
                  copy.deepcopy(data.get("data")))
    error.add_note(f"[agent-replay] replayed from event #{event.seq}; recorded traceback:\n"
                   f"{event.error.traceback}")
    return error  # type: ignore[no-any-return]


async def _serve(event: Event, peer: _Peer, opts: Any) -> Any:
    """Answer from the recording: what came with it first, then the result or the error."""
    import anyio

    await anyio.lowlevel.checkpoint()
    on_progress = opts.get("on_progress") if isinstance(opts, dict) else None
    for chunk in event.chunks:
        kind, *item = json.loads(chunk.data)
        if kind == "progress" and on_progress is not None:
            await _as_callback(event.seq, on_progress, *item)
        elif kind == "notify" and (session := peer.session()) is not None:
            with contextlib.suppress(Exception):  # the session's own handler contains the rest
                await _as_callback(event.seq, session._on_notify, None, *item)
    if event.error is not None:
        if isinstance(event.response, dict) and event.response.get("cancelled"):
            await anyio.sleep_forever()  # it never answered: the caller's cancel ends it
        raise _rebuild(event)
    return copy.deepcopy(event.response)


async def _shadow(send: Callable[[], Awaitable[Any]]) -> None:
    """Send a handshake the recording answered to the live server too (quietly, the
    answer dropped): a run that goes live later (a fork, new events) then talks to a
    server that knows the session (its HTTP session id, its protocol version)."""
    busy = BUSY.set(True)
    try:
        await send()
    except Exception:
        pass  # the run's first live request meets the same trouble, and reports it
    finally:
        BUSY.reset(busy)


def send(original: Any) -> Any:
    """A dispatcher's ``send_raw_request``: one event per request of a client session."""
    @functools.wraps(original)
    async def send_raw_request(self: Any, method: str, params: Any, opts: Any = None,
                               **kwargs: Any) -> Any:
        peer = _peer_of(self)
        s = current()
        if peer is None or s is None:
            return await original(self, method, params, opts, **kwargs)
        channel, request = request_of(peer.label, method, params)
        pending = s.begin(channel, request)
        if pending is None:  # not part of the run (a task it did not start)
            if peer.dead:
                raise ServerNotStartedError(peer.label, f"{method} is not part of the recording")
            return await original(self, method, params, opts, **kwargs)
        if pending.recorded is not None:
            if method in HANDSHAKE and s.recording and not peer.dead:
                await _shadow(lambda: original(self, method, params, opts, **kwargs))
            return await _serve(pending.recorded, peer, opts)
        return await _record(pending, peer, lambda o: original(self, method, params, o,
                                                               **kwargs), opts)
    return send_raw_request


def notify(original: Any) -> Any:
    """A dispatcher's ``notify``: dropped on strict replay, sent quietly otherwise."""
    @functools.wraps(original)
    async def notify(self: Any, method: str, params: Any, opts: Any = None,
                     **kwargs: Any) -> None:
        peer = _peer_of(self)
        s = current()
        if peer is None or s is None:
            return await original(self, method, params, opts, **kwargs)  # type: ignore[no-any-return]
        if peer.dead or s.replaying:
            return None
        busy = BUSY.set(True)
        try:
            return await original(self, method, params, opts, **kwargs)  # type: ignore[no-any-return]
        finally:
            BUSY.reset(busy)
    return notify


def callback(original: Any) -> Any:
    """``ClientSession._on_request`` / ``_on_notify(dctx, method, params)``: the user's
    callbacks, recorded (the transport's task may carry ``BUSY``) and nested under the
    request they came with; a notification is also kept as that request's chunk."""
    notification = original.__name__ == "_on_notify"

    @functools.wraps(original)
    async def handler(self: Any, dctx: Any, method: str, params: Any) -> Any:
        peer = _peer_of(vars(self).get("_dispatcher"))
        if peer is None or current() is None:
            return await original(self, dctx, method, params)
        parent = PARENT.get()
        if parent is None and peer.in_flight:
            parent = next(reversed(peer.in_flight))
        waiting = peer.in_flight.get(parent) if parent is not None else None
        if notification and waiting is not None:
            waiting[1].append(_chunk(waiting[0], "notify", method, params))
        return await _as_callback(parent, original, self, dctx, method, params)
    return handler
