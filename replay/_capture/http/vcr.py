"""requests, urllib3 and aiohttp, recorded through vcrpy's stubs into our event log.

vcrpy's stubs (its urllib3 connection classes and its aiohttp
``ClientSession._request``) talk to a "cassette" through five calls:
``can_play_response_for``, ``play_response``, ``append``, ``write_protected``
and ``filter_request``. :class:`Bridge` is that cassette, backed by the active
session: each request becomes an ``http`` event in the one global order the
httpx events use, answered on replay by the same matcher. vcrpy's own
cassette, persister, matchers and ``patch.py`` are not used; the patch
triples are built here and installed by ``replay._capture.patch`` with every other
patch, so installing and removing stay one thread-safe unit.

vcrpy itself is imported only when a run first makes a request through urllib3
or aiohttp (importing it imports every library it has stubs for, and yaml):
until then the patches in place are the two that need no vcrpy, and a process
whose runs speak only httpx never loads it. See "vcrpy, imported at a run's
first request" below.

vcrpy reads a response body whole before handing it over, so these
libraries' bodies are recorded as one chunk (no per-chunk timing; stream
LLM calls through httpx). vcrpy's ``force_reset`` (which briefly un-patches
every HTTP library, httpx included, while a live request is made: a window
in which other threads would go unrecorded) is replaced by a no-op while a
session is installed; our stubs never need it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from replay._capture import exc as _exc
from replay._capture import patch as _patch
from replay._capture import tasks as _tasks
from replay._capture.exc import ReplayedException
from replay._capture.http.common import (
    CHANNEL,
    canonical_body,
    canonical_url,
    config_of,
    header_get,
    request_value,
    response_value,
    served_headers,
)
from replay._capture.session import BUSY, Pending, current
from replay._cassette.errors import NetworkBlockedError, ReplayError
from replay._cassette.events import Chunk, Event, RecordedError, Value

PatchList = _patch.PatchList

_ATTR = "_agent_replay_state"
_PASS = "pass"
_OUTER: ContextVar[bool] = ContextVar("agent_replay_vcr_outer", default=False)
"""True when the stub was entered while another interceptor ran a live call."""
_HOLDER: ContextVar[list[_Call] | None] = ContextVar("agent_replay_vcr_holder", default=None)
"""Pendings begun by the aiohttp request running in this context."""


# -- value conversion ------------------------------------------------------------
def _header_items(headers: Any) -> Iterator[tuple[str, str]]:
    items = headers.items() if hasattr(headers, "items") else headers or ()
    for name, value in items:
        values = value if isinstance(value, list | tuple) else (value,)
        for v in values:
            yield str(name), v.decode("latin-1") if isinstance(v, bytes) else str(v)


def vcr_request_value(request: Any) -> dict[str, Value]:
    """The canonical request of a vcrpy ``Request``."""
    pairs = list(_header_items(request.headers))
    ctype = next((v for k, v in pairs if k.lower() == "content-type"), None)
    body = getattr(request, "body_bytes", None)
    if body is None:
        body = request.body
    return request_value(str(request.method), str(request.uri), canonical_body(body, ctype),
                         pairs)


def vcr_response_parts(response: Any, at_ns: int = 0
                       ) -> tuple[dict[str, Value], tuple[Chunk, ...], dict[str, Value]]:
    """A vcrpy response dict as (response head, chunks, meta) of an ``http`` event."""
    status = response.get("status") or {}
    pairs = [[k, v] for k, v in _header_items(response.get("headers") or {})]
    body = (response.get("body") or {}).get("string") or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    head = response_value(int(status.get("code", 200)), str(status.get("message") or ""), pairs)
    meta: dict[str, Value] = {}
    encoding = header_get(pairs, "content-encoding")  # type: ignore[arg-type]
    if encoding and encoding.lower() != "identity":
        meta["decoded"] = encoding  # requests/urllib3/aiohttp hand vcrpy decoded bodies
    return head, ((Chunk(bytes(body), at_ns),) if body else ()), meta


def vcr_response(ev: Event) -> dict[str, Any]:
    """The vcrpy response dict that replays ``ev``."""
    resp = ev.response if isinstance(ev.response, dict) else {}
    headers: dict[str, list[str]] = {}
    for name, value in served_headers(resp, ev.meta):
        headers.setdefault(name, []).append(value)
    status = resp.get("status")
    return {"status": {"code": status if isinstance(status, int) else 200,
                       "message": str(resp.get("reason") or "")},
            "headers": headers,
            "body": {"string": b"".join(c.data for c in ev.chunks)}}


def rebuild(recorded: RecordedError, seq: int) -> BaseException:
    """The recorded exception again, of the same type as far as ``except`` can tell.

    Some library errors cannot be built from their message alone (aiohttp's
    ``ClientConnectorError`` wants a connection key and an ``OSError``); they
    come back as a stand-in subclass of the recorded type that carries the
    recorded message, so ``except ClientConnectorError`` still catches them.
    """
    try:
        exc = _exc.rebuild(recorded, seq)
        str(exc)
        return exc
    except Exception:
        pass
    cls = _exc.resolve_type(recorded.type)
    if cls is None:
        return ReplayedException(recorded)
    try:
        exc = _stand_in(cls)(recorded.message)
        str(exc)
    except Exception:
        return ReplayedException(recorded)
    exc.add_note(f"[agent-replay] replayed from event #{seq}; recorded traceback:\n"
                 f"{recorded.traceback}")
    return exc


_STAND_INS: dict[type[BaseException], Callable[[str], BaseException]] = {}


def _stand_in(cls: type[BaseException]) -> Callable[[str], BaseException]:
    made = _STAND_INS.get(cls)
    if made is not None:
        return made

    def make(message: str) -> BaseException:
        exc: BaseException = sub.__new__(sub)
        exc.args = (message,)
        return exc

    def text(self: BaseException) -> str:
        return str(self.args[0]) if self.args else ""

    sub: Any = type(cls.__name__, (cls,), {
        "__init__": lambda self, *args, **kwargs: None, "__str__": text,
        "__module__": cls.__module__, "__qualname__": cls.__qualname__,
        "__doc__": f"Stands in for a replayed {cls.__qualname__} (built from its message)."})
    _STAND_INS[cls] = make
    return make


# -- the cassette vcrpy's stubs talk to ------------------------------------------
class _Call:
    """One request's event while vcrpy handles it."""

    __slots__ = ("client", "done", "pending")

    def __init__(self, pending: Pending, client: str) -> None:
        self.pending = pending
        self.client = client
        self.done = False

    def finish(self, response: dict[str, Any]) -> None:
        if self.done or self.pending.recorded is not None:
            return
        self.done = True
        head, chunks, meta = vcr_response_parts(response, self.pending.elapsed_ns())
        meta = {"client": self.client, "head_ns": self.pending.elapsed_ns(), **meta}
        self.pending.finish(head, chunks=chunks, meta=meta)

    def fail(self, exc: BaseException) -> None:
        if self.done or self.pending.recorded is not None:
            return
        self.done = True
        self.pending.fail(exc, meta={"client": self.client})


class Bridge:
    """vcrpy's cassette interface, answered by the active session."""

    write_protected = False
    """Requests the session does not answer go to the network (strict replay
    blocks them at the socket, or earlier in :meth:`_begin`)."""

    def filter_request(self, request: Any) -> Any:
        """Every request is recorded (redaction happens in the writer)."""
        return request

    def _begin(self, request: Any) -> _Call | None:
        s = current()
        if s is None or _OUTER.get():
            return None
        token = BUSY.set(False)  # the stub wrappers set BUSY for the live call only
        try:
            pending = s.begin(CHANNEL, vcr_request_value(request))
        finally:
            BUSY.reset(token)
        if pending is None:
            if s.replaying:
                parsed = request.parsed_uri
                port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
                host = parsed.hostname or ""
                if not config_of(s).allows(host, port):
                    raise NetworkBlockedError(host, port,
                                              "an HTTP request outside the recorded run")
            return None
        holder = _HOLDER.get()
        call = _Call(pending, "urllib3" if holder is None else "aiohttp")
        if holder is not None:
            holder.append(call)
        return call

    def state(self, request: Any) -> _Call | None:
        """The request's event, begun on first sight (cached on the request)."""
        state = request.__dict__.get(_ATTR)
        if state is None:
            state = self._begin(request) or _PASS
            setattr(request, _ATTR, state)
        return state if isinstance(state, _Call) else None

    def can_play_response_for(self, request: Any) -> bool:
        """True when the recording answers ``request``."""
        call = self.state(request)
        return call is not None and call.pending.recorded is not None

    def play_response(self, request: Any) -> dict[str, Any]:
        """The recorded response (or raise the recorded error)."""
        call = self.state(request)
        ev = call.pending.recorded if call is not None else None
        if ev is None:
            raise ReplayError(f"no recorded response for {request.method} {request.uri}")
        if not isinstance(ev.response, dict):
            if ev.error is not None:
                raise rebuild(ev.error, ev.seq)
            raise ReplayError(f"event #{ev.seq} on channel 'http' holds no HTTP response")
        return vcr_response(ev)

    def find_requests_with_most_matches(self, request: Any) -> list[tuple[Any, list[Any],
                                                                          list[Any]]]:
        """aiohttp redirects on replay: the next hop is matched by the session."""
        return [(request, [], [])]

    def append(self, request: Any, response: dict[str, Any]) -> None:
        """vcrpy recorded a live response: complete the request's event."""
        call = self.state(request) if _ATTR in request.__dict__ else self._adopt(request)
        if call is not None:
            call.finish(response)

    def _adopt(self, request: Any) -> _Call | None:
        # aiohttp records redirect hops with fresh Request objects: the first
        # hop completes the event begun for the original request.
        want = (str(request.method).upper(), canonical_url(str(request.uri)))
        for call in _HOLDER.get() or ():
            r = call.pending.request
            if (not call.done and isinstance(r, dict)
                    and (r.get("method"), r.get("url")) == want):
                setattr(request, _ATTR, call)
                return call
        return self.state(request)


BRIDGE = Bridge()


# -- vcrpy, imported at a run's first request through urllib3 or aiohttp -------------
# Importing vcrpy imports every HTTP library it has stubs for (requests, urllib3,
# botocore, httplib2, tornado, aiohttp, httpx) and yaml, ~20k objects and up to a
# second: a service whose runs only speak httpx never pays it. The patches that
# need no vcrpy (urllib3's ``_get_conn``, aiohttp's ``_request``) go in when the
# library is loaded; the first request a run makes through one of them imports
# vcrpy and builds its stubs (outside the run: what the imports read is not the
# run's), and urllib3's connection classes are swapped for them from then on.
_KIT_LOCK = threading.Lock()
"""Held while a kit is built (taken before any patch lock, never under it)."""
_kits: dict[str, Any] = {}


@functools.cache
def _have_vcr() -> bool:
    return importlib.util.find_spec("vcr") is not None


def _kit(name: str, build: Callable[[], Any]) -> Any:
    kit = _kits.get(name)
    if kit is None:
        with _KIT_LOCK:
            kit = _kits.get(name)
            if kit is None:
                token = _tasks.CURRENT.set(None)
                try:
                    kit = _kits[name] = build()
                finally:
                    _tasks.CURRENT.reset(token)
    return kit


# -- urllib3 (and requests) ------------------------------------------------------
def _wrapped_getresponse(conn: Any, call: Any, args: Any, kwargs: Any) -> Any:
    request = conn.__dict__.get("_vcr_request")
    outer = BUSY.get()
    t_outer = _OUTER.set(outer)
    try:
        state = BRIDGE.state(request) if request is not None else None
        t_busy = BUSY.set(True)
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if state is not None:
                state.fail(exc)
            raise
        finally:
            BUSY.reset(t_busy)
    finally:
        _OUTER.reset(t_outer)


def _urllib3_kit() -> PatchList:
    """vcrpy's urllib3 connections answered by the session, and the pool function that
    tells their liveness: the patches for ``urllib3.connection`` and its pools."""
    conn, cpool = sys.modules["urllib3.connection"], sys.modules["urllib3.connectionpool"]
    from vcr.stubs import urllib3_stubs as stubs

    class HTTPConnection(stubs.VCRRequestsHTTPConnection):  # type: ignore[misc]
        """vcrpy's urllib3 HTTP connection, answered by the session."""

        cassette = BRIDGE

        def getresponse(self, *args: Any, **kwargs: Any) -> Any:
            return _wrapped_getresponse(self, super().getresponse, args, kwargs)

    class HTTPSConnection(stubs.VCRRequestsHTTPSConnection):  # type: ignore[misc]
        """vcrpy's urllib3 HTTPS connection, answered by the session."""

        cassette = BRIDGE

        def getresponse(self, *args: Any, **kwargs: Any) -> Any:
            return _wrapped_getresponse(self, super().getresponse, args, kwargs)

    real_dropped = vars(cpool)["is_connection_dropped"]

    def is_connection_dropped(connection: Any) -> bool:
        real = getattr(connection, "real_connection", None)
        if real is None:
            return bool(real_dropped(connection))
        if getattr(real, "sock", None) is None:
            return False
        return bool(real_dropped(real))

    return [
        (conn, "VerifiedHTTPSConnection", HTTPSConnection),
        (conn, "HTTPConnection", HTTPConnection), (conn, "HTTPSConnection", HTTPSConnection),
        (cpool, "is_connection_dropped", is_connection_dropped),
        (cpool.HTTPConnectionPool, "ConnectionCls", HTTPConnection),
        (cpool.HTTPSConnectionPool, "ConnectionCls", HTTPSConnection),
    ]


def _urllib3_stubs() -> PatchList:
    """The stub patches when they are not in place (they are while the pools'
    connection class is vcrpy's; the kit is built)."""
    stubs: PatchList = _kits["urllib3"]
    cpool = sys.modules["urllib3.connectionpool"]
    http = next(new for owner, attr, new in stubs if owner is cpool.HTTPConnectionPool)
    return [] if vars(cpool.HTTPConnectionPool).get("ConnectionCls") is http else stubs


def _stub_urllib3() -> bool:
    """vcrpy's urllib3 stubs in place (at a run's first request through urllib3);
    False when the patches came out meanwhile."""
    _kit("urllib3", _urllib3_kit)
    return _patch.extend(_urllib3_stubs)


@functools.cache
def _get_conn_patch(get_conn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(get_conn)
    def _get_conn(pool: Any, timeout: Any = None, **kwargs: Any) -> Any:
        if (getattr(pool.ConnectionCls, "cassette", None) is not BRIDGE
                and (current() is None or not _stub_urllib3())):
            return get_conn(pool, timeout, **kwargs)  # no run has used urllib3 yet
        connection = get_conn(pool, timeout, **kwargs)
        while not isinstance(connection, pool.ConnectionCls):
            if connection is not None:
                connection.close()  # a pooled live connection: drop it, keep its slot
            pool._put_conn(None)
            connection = get_conn(pool, timeout, **kwargs)
        return connection
    return _get_conn


def _urllib3_patches(module: types.ModuleType) -> PatchList:
    """urllib3's pools take a connection through ``_get_conn``; with the stubs when a
    run has made a request through urllib3 before (a ``register_module`` provider)."""
    cpool = sys.modules.get("urllib3.connectionpool")
    if cpool is None or not _have_vcr():
        return []
    get_conn = _get_conn_patch(vars(cpool.HTTPConnectionPool)["_get_conn"])
    out: PatchList = [(cpool.HTTPConnectionPool, "_get_conn", get_conn),
                      (cpool.HTTPSConnectionPool, "_get_conn", get_conn)]
    return out + (_urllib3_stubs() if "urllib3" in _kits else [])


# -- aiohttp ---------------------------------------------------------------------
@functools.cache
def _aiohttp_patch(original: Callable[..., Any]) -> Callable[..., Any]:
    def through_vcr() -> Any:
        from vcr.stubs.aiohttp_stubs import vcr_request
        return vcr_request(BRIDGE, original)

    @functools.wraps(original)
    async def _request(self: Any, method: str, url: Any, **kwargs: Any) -> Any:
        if current() is None or BUSY.get():
            return await original(self, method, url, **kwargs)
        request = _kit("aiohttp", through_vcr)
        holder: list[_Call] = []
        t_holder = _HOLDER.set(holder)
        t_busy = BUSY.set(True)
        try:
            return await request(self, method, url, **kwargs)
        except Exception as exc:
            for state in holder:
                state.fail(exc)
            raise
        finally:
            BUSY.reset(t_busy)
            _HOLDER.reset(t_holder)

    return _request


def _aiohttp_patches(module: types.ModuleType) -> PatchList:
    """``ClientSession._request`` through vcrpy's stub in a run (a ``register_module``
    provider)."""
    client = sys.modules.get("aiohttp.client")
    if client is None or not _have_vcr():
        return []
    session_cls = client.ClientSession
    return [(session_cls, "_request", _aiohttp_patch(vars(session_cls)["_request"]))]


# -- the providers ---------------------------------------------------------------
@contextlib.contextmanager
def _no_reset() -> Iterator[None]:
    yield


def _vcr_patches(module: types.ModuleType) -> PatchList:
    """vcrpy's ``force_reset`` made a no-op (a ``register_module`` provider)."""
    return [(module, "force_reset", _no_reset)]


MODULE_PATCHES: dict[str, Callable[[types.ModuleType], PatchList]] = {
    "urllib3": _urllib3_patches, "aiohttp": _aiohttp_patches, "vcr.patch": _vcr_patches}
"""The ``register_module`` providers: each is applied when its module is loaded (at
install, or when a run imports it)."""
