"""lm15's own HTTP/1.1 transports (DSPy's default engine) as ``http`` events.

lm15 (on PyPI, and vendored by DSPy 3.4 as ``dspy._vendor.lm15``) speaks HTTP
over raw sockets it opens itself (``socket.create_connection``, or
``asyncio.open_connection``), with its own request writer and response parser:
no HTTP client agent-replay patches is involved. Its transports have one entry
each, the httpx-like seam its providers call:

* ``StdlibTransport.stream(request) -> TransportResponse`` (sync);
* ``StdlibAsyncTransport._do_stream(request) -> AsyncTransportResponse`` (what
  ``stream(request)``'s awaitable and async context manager run).

Both are replaced on the real classes (``register_module``: when lm15 is loaded,
under either name). Recording wraps the live response's body: each chunk is
handed on as it arrives, stamped with its time, and the event is written by
:class:`~.recording.Recorder` when the body ends, fails or is closed (lm15
decodes ``Content-Encoding`` itself, so the body is stored decoded and
``meta["decoded"]`` says so). Replay builds lm15's own response type from the
event (same status, reason, headers and chunks, at once or paced) and opens no
socket; recorded transport errors (``ConnectError``, ``ReadTimeout``...) are
raised again as their type.
"""

from __future__ import annotations

import functools
import types
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from replay._capture import patch as _patch
from replay._capture.http.common import (
    CHANNEL,
    Pacer,
    canonical_body,
    config_of,
    header_get,
    header_pairs,
    read_past,
    request_value,
    response_value,
    served_headers,
)
from replay._capture.http.recording import Recorder, direct_writer
from replay._capture.http.vcr import rebuild
from replay._capture.session import BUSY, Pending, Session, current
from replay._cassette.errors import NetworkBlockedError, ReplayError
from replay._cassette.events import Event, Value

PACKAGES = ("lm15", "dspy._vendor.lm15")
"""Where lm15 is found: on its own, and inside DSPy."""
CLIENT = "lm15"
"""``meta["client"]`` of its events."""
_OURS = "_agent_replay_lm15"


def _request_value(request: Any) -> dict[str, Value]:
    headers = [(str(k), str(v)) for k, v in request.headers]
    ctype = next((v for k, v in headers if k.lower() == "content-type"), None)
    return request_value(str(request.method), str(request.url),
                         canonical_body(bytes(request.body or b""), ctype), headers)


def _guard(session: Session, url: str) -> None:
    if not session.replaying:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    if not config_of(session).allows(host, port):
        raise NetworkBlockedError(host, port, "an HTTP request outside the recorded run")


def _recorder(pending: Pending, response: Any) -> Recorder:
    pairs = header_pairs(response.headers)
    head = response_value(int(response.status), str(response.reason or ""), pairs,
                          str(response.http_version or "HTTP/1.1"))
    meta: dict[str, Value] = {"client": CLIENT, "head_ns": pending.elapsed_ns()}
    encoding = header_get(pairs, "content-encoding")  # type: ignore[arg-type]
    if encoding and encoding.lower() != "identity":
        meta["decoded"] = encoding  # lm15 hands over the decoded body
    return Recorder(pending, head, meta, None, direct_writer(pending.session))


def _tail(session: Session, pending: Pending, ev: Event) -> Callable[[], BaseException] | None:
    error = ev.error
    if error is not None:
        return lambda: rebuild(error, ev.seq)
    if ev.meta.get("stream") is not None:
        return lambda: read_past(session, pending, ev)
    return None


def _head(ev: Event) -> dict[str, Any]:
    resp = ev.response
    if not isinstance(resp, dict):
        if ev.error is None:
            raise ReplayError(f"event #{ev.seq} on channel 'http' holds no HTTP response")
        raise rebuild(ev.error, ev.seq)
    status = resp.get("status")
    return {"status": status if isinstance(status, int) else 200,
            "reason": str(resp.get("reason") or ""),
            "headers": served_headers(resp, ev.meta),
            "http_version": str(resp.get("http_version") or "HTTP/1.1")}


def _head_wait(ev: Event, pacer: Pacer) -> float:
    at = ev.meta.get("head_ns") if isinstance(ev.response, dict) else ev.duration_ns
    return pacer.delay(at if isinstance(at, int) else 0)


# -- sync ------------------------------------------------------------------------
def _recorded_body(response: Any, rec: Recorder) -> Iterator[bytes]:
    it = iter(response)
    try:
        while True:
            token = BUSY.set(True)
            try:
                data = next(it)
            except StopIteration:
                break
            except Exception as exc:
                rec.complete(exc=exc)
                raise
            finally:
                BUSY.reset(token)
            rec.add(data)
            yield data
        rec.complete()
    finally:
        rec.complete("closed-early")


def _replayed_body(ev: Event, pacer: Pacer, tail: Callable[[], BaseException] | None
                   ) -> Iterator[bytes]:
    for c in ev.chunks:
        wait = pacer.delay(c.at_ns)
        if wait:
            _patch._sleep(wait)
        yield c.data
    if tail is not None:
        raise tail()


@functools.cache
def _sync_patch(original: Callable[..., Any], response_cls: type) -> Callable[..., Any]:
    @functools.wraps(original)
    def stream(self: Any, request: Any) -> Any:
        s = current()
        if s is None or BUSY.get():
            return original(self, request)
        pending = s.begin(CHANNEL, _request_value(request))
        if pending is None:
            _guard(s, str(request.url))
            return original(self, request)
        ev = pending.recorded
        if ev is not None:
            pacer = Pacer(config_of(s).speed)
            wait = _head_wait(ev, pacer)
            if wait:
                _patch._sleep(wait)
            head = _head(ev)
            return response_cls(**head, chunks=_replayed_body(ev, pacer,
                                                              _tail(s, pending, ev)),
                                release=lambda consumed: None)
        token = BUSY.set(True)
        try:
            live = original(self, request)
        except Exception as exc:
            pending.fail(exc, meta={"client": CLIENT})
            raise
        finally:
            BUSY.reset(token)
        rec = _recorder(pending, live)

        def release(consumed: bool) -> None:
            try:
                live.close()
            finally:
                rec.complete(None if consumed else "closed-early")
        return response_cls(status=live.status, reason=live.reason, headers=live.headers,
                            http_version=live.http_version, chunks=_recorded_body(live, rec),
                            release=release)
    setattr(stream, _OURS, True)
    return stream


# -- async -----------------------------------------------------------------------
async def _arecorded_body(response: Any, rec: Recorder) -> AsyncIterator[bytes]:
    it = response.__aiter__()
    try:
        while True:
            token = BUSY.set(True)
            try:
                data = await it.__anext__()
            except StopAsyncIteration:
                break
            except Exception as exc:
                rec.complete(exc=exc)
                raise
            finally:
                BUSY.reset(token)
            rec.add(data)
            yield data
        rec.complete()
    finally:
        rec.complete("closed-early")


async def _areplayed_body(ev: Event, pacer: Pacer, tail: Callable[[], BaseException] | None
                          ) -> AsyncIterator[bytes]:
    for c in ev.chunks:
        wait = pacer.delay(c.at_ns)
        if wait:
            await _patch._asyncio_sleep(wait)
        yield c.data
    if tail is not None:
        raise tail()


async def _nothing(consumed: bool) -> None:
    return None


@functools.cache
def _async_patch(original: Callable[..., Any], response_cls: type) -> Callable[..., Any]:
    @functools.wraps(original)
    async def _do_stream(self: Any, request: Any) -> Any:
        s = current()
        if s is None or BUSY.get():
            return await original(self, request)
        pending = s.begin(CHANNEL, _request_value(request))
        if pending is None:
            _guard(s, str(request.url))
            return await original(self, request)
        ev = pending.recorded
        if ev is not None:
            pacer = Pacer(config_of(s).speed)
            wait = _head_wait(ev, pacer)
            if wait:
                await _patch._asyncio_sleep(wait)
            head = _head(ev)
            return response_cls(**head, chunks=_areplayed_body(ev, pacer,
                                                               _tail(s, pending, ev)),
                                release=_nothing)
        token = BUSY.set(True)
        try:
            live = await original(self, request)
        except Exception as exc:
            pending.fail(exc, meta={"client": CLIENT})
            raise
        finally:
            BUSY.reset(token)
        rec = _recorder(pending, live)

        async def release(consumed: bool) -> None:
            try:
                await live.aclose()
            finally:
                rec.complete(None if consumed else "closed-early")
        return response_cls(status=live.status, reason=live.reason, headers=live.headers,
                            http_version=live.http_version,
                            chunks=_arecorded_body(live, rec), release=release)
    setattr(_do_stream, _OURS, True)
    return _do_stream


# -- the providers ---------------------------------------------------------------
def _sync_patches(module: types.ModuleType) -> _patch.PatchList:
    """``StdlibTransport.stream`` (a ``register_module`` provider)."""
    cls = getattr(module, "StdlibTransport", None)
    response_cls = getattr(module, "TransportResponse", None)
    original = vars(cls).get("stream") if isinstance(cls, type) else None
    if original is None or not isinstance(response_cls, type) or _OURS in vars(original):
        return []
    return [(cls, "stream", _sync_patch(original, response_cls))]


def _async_patches(module: types.ModuleType) -> _patch.PatchList:
    """``StdlibAsyncTransport._do_stream`` (a ``register_module`` provider)."""
    cls = getattr(module, "StdlibAsyncTransport", None)
    response_cls = getattr(module, "AsyncTransportResponse", None)
    original = vars(cls).get("_do_stream") if isinstance(cls, type) else None
    if original is None or not isinstance(response_cls, type) or _OURS in vars(original):
        return []
    return [(cls, "_do_stream", _async_patch(original, response_cls))]


MODULE_PATCHES: dict[str, Callable[[types.ModuleType], _patch.PatchList]] = {}
"""The ``register_module`` providers, by module name."""
for _pkg in PACKAGES:
    MODULE_PATCHES[f"{_pkg}.transports._sync"] = _sync_patches
    MODULE_PATCHES[f"{_pkg}.transports._async"] = _async_patches
