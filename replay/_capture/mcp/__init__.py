"""MCP clients (the official ``mcp`` SDK, 2.x): every request a session makes is an event.

Where it cuts in. A ``ClientSession`` sends everything (the handshake,
``server/discover``, listings, tool calls, resources, prompts, pings) through
its dispatcher's ``send_raw_request(method, params, opts) -> dict``, in the
caller's task. That method is patched on the SDK's dispatchers
(``JSONRPCDispatcher`` for stdio, streamable HTTP and SSE; ``DirectDispatcher``
for in-process servers), for the dispatchers of client sessions only (a
patched ``ClientSession.__init__`` registers its dispatcher and the server it
talks to). One request is one event:

* ``tools/call`` is channel ``tool:NAME``, request ``{"server", "method",
  "name", "args"}`` (plus ``"params"`` for the call's other fields: the
  caller's own ``_meta``, input responses). An MCP tool is the agent's tool:
  it shows as a tool in ``replay show`` and the TUI, ``replay_run.tool(NAME)``
  and ``assert_tool_called`` find it and read its ``args`` as for
  ``@replay.tool``, drift reports changed arguments as a tool's, and a
  divergence names the tool in its channel. ``method`` and ``name`` make a
  changed argument a *changed* call (``args.order_id``), not an extra one.
* every other request is channel ``mcp``, request ``{"server", "method",
  "params"}``: protocol plumbing, one channel to filter on.

``server`` is the server's label, from the transport that reached it: ``stdio:``
and the command's base name and arguments, the endpoint URL (``sse:URL`` for
SSE), ``in-process`` (``unknown`` for streams no wrapped transport made). The
``_meta`` keys the SDK stamps itself (protocol version, client info and
capabilities, log level, progress token, trace context) are left out, and so
are request ids, timeouts and headers (they are not in the params).

The response is the raw result dict exactly as the server sent it, so on
replay the SDK validates and parses it itself (``structuredContent`` checks,
tool-list bookkeeping): the typed results are what the live run had. A tool's
``isError`` result is a normal response; a JSON-RPC error is recorded as the
``MCPError`` with ``{"error": {code, message, data}}`` and raised again with
the same code, message and data.

What the server sent while the request waited (progress, log messages, any
notification the session's callbacks saw) is kept as the event's chunks and
delivered again, in order, before the replayed call returns. A request
cancelled while it waited never answers on replay either: the caller's timeout
or cancel ends it again.

Recording is quiet: the live request and the transports' set-up and exit run
with ``BUSY`` set, so the transport's own traffic (the HTTP transport's httpx2
requests, the stdio exit's polling sleeps) is not recorded. The callbacks the
server drives (progress, logging, message handler, sampling, elicitation,
roots) run with ``BUSY`` cleared and their events nested under the request in
flight: recorded and shown, never expected on replay (re-delivered
notifications run them again; server requests, such as sampling, do not).

Strict replay starts no server: ``stdio_client``, ``streamable_http_client``
and ``sse_client`` yield streams connected to nothing (no process, no HTTP
client, no task), notifications are dropped, and starting a stdio server
process by any other path raises :class:`ServerNotStartedError`. Sessions that
also record (new-events, fork) open the real transport and run live what the
recording cannot answer; the handshake (``initialize``, ``server/discover``) is
answered from the recording and also sent to the live server, so a request that
goes live finds its session there.

``mcp.Client``'s response cache keeps entries for the ``ttlMs`` a server gives;
its default clock is ``time.time`` bound when the SDK was imported, out of the
clock capture's reach. A cache made during a run reads ``time.time`` when it
runs instead: expiry is decided on the recorded clock, so the same list calls
reach the server on replay.

The SDK is never imported by agent-replay: the patches apply when the run
imports it (``register_module``). mcp 1.x (no dispatchers) is left alone.

* ``transports``  server labels, the transport wrappers, the spawn guard
* ``dispatch``    requests as events: record, serve, errors, progress, callbacks
"""

from __future__ import annotations

import functools
import sys
import time
import types
from collections.abc import Callable
from typing import Any

from replay._capture import patch as _patch
from replay._capture.clock import _time as _real_time
from replay._capture.mcp.dispatch import (
    CHANNEL,
    STAMPED_META,
    callback,
    notify,
    request_of,
    send,
    session_init,
)
from replay._capture.mcp.transports import (
    ServerNotStartedError,
    no_process,
    stdio_label,
    stdio_label_of,
    transport,
    url_label,
    url_label_of,
)

__all__ = ["CHANNEL", "STAMPED_META", "ServerNotStartedError", "request_of", "stdio_label",
           "url_label"]

_WRAPPERS: dict[tuple[str, str], tuple[object, object]] = {}


def _replace(owner: Any, attr: str, make: Callable[[Any], Any]) -> _patch.PatchList:
    """``owner.attr`` replaced by ``make(original)``, one wrapper per original."""
    original = vars(owner).get(attr)
    if original is None:
        return []
    key = (f"{getattr(owner, '__module__', '')}.{getattr(owner, '__qualname__', owner)}"
           if isinstance(owner, type) else owner.__name__, attr)
    cached = _WRAPPERS.get(key)
    if cached is not None and cached[1] is original:
        return []  # ours already (bound when the run imported the module)
    if cached is None or cached[0] is not original:
        cached = (original, make(original))
        _WRAPPERS[key] = cached
    return [(owner, attr, cached[1])]


@functools.cache
def _has_dispatchers() -> bool:
    """mcp 2.x (sessions on dispatchers); 1.x is not intercepted, its transports run."""
    import importlib.util

    if "mcp.shared.jsonrpc_dispatcher" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("mcp.shared.jsonrpc_dispatcher") is not None
    except (ImportError, ValueError):
        return False


def _transports(module: types.ModuleType) -> _patch.PatchList:
    if not _has_dispatchers():
        return []
    name = module.__name__.rsplit(".", 1)[1]
    if name == "stdio":
        return (_replace(module, "stdio_client", transport(stdio_label_of))
                + _replace(module, "_create_platform_compatible_process", no_process))
    if name == "streamable_http":
        return _replace(module, "streamable_http_client", transport(url_label_of("")))
    return _replace(module, "sse_client", transport(url_label_of("sse:")))


def _session(module: types.ModuleType) -> _patch.PatchList:
    cls = getattr(module, "ClientSession", None)
    if not isinstance(cls, type) or not _has_dispatchers():
        return []
    return (_replace(cls, "__init__", session_init) + _replace(cls, "_on_request", callback)
            + _replace(cls, "_on_notify", callback))


def _now() -> float:
    """``time.time()``, looked up when called (the clock capture's while a run is on)."""
    return time.time()


def _cache_init(original: Any) -> Any:
    """``ClientResponseCache.__init__``: the default clock becomes :func:`_now`."""
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("clock") is _real_time:
            kwargs["clock"] = _now
        original(self, *args, **kwargs)
    return __init__


def _cache(module: types.ModuleType) -> _patch.PatchList:
    cls = getattr(module, "ClientResponseCache", None)
    return _replace(cls, "__init__", _cache_init) if isinstance(cls, type) else []


def _dispatchers(module: types.ModuleType) -> _patch.PatchList:
    out: _patch.PatchList = []
    for name in ("JSONRPCDispatcher", "DirectDispatcher"):
        cls = getattr(module, name, None)
        if isinstance(cls, type):
            out += _replace(cls, "send_raw_request", send) + _replace(cls, "notify", notify)
    return out


for _name in ("mcp.client.stdio", "mcp.client.streamable_http", "mcp.client.sse"):
    _patch.register_module(_name, _transports)
_patch.register_module("mcp.client.session", _session)
_patch.register_module("mcp.shared.jsonrpc_dispatcher", _dispatchers)
_patch.register_module("mcp.shared.direct_dispatcher", _dispatchers)
_patch.register_module("mcp.client.caching", _cache)
