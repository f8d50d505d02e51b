"""httpx and httpx2 at the transport level: one implementation, parametrised by module.

The default transports' ``HTTPTransport.handle_request`` and
``AsyncHTTPTransport.handle_async_request`` are patched (through
``replay._capture.patch.register``) so clients that an SDK builds for itself are
recorded without a change to user code; :func:`httpx_transport` wraps any
transport for users who hand their own client over.

Recording never reads a response ahead of its caller: the response's stream
is wrapped, each chunk is stamped with its arrival time and handed on at
once, and the event is written when the stream is exhausted, fails, or is
closed (a stream closed early is not drained; the event says
``{"stream": "closed-early"}``). Replay builds the response from the event:
the same status, headers and chunk boundaries, at once or at the recorded
pace (``speed``), and re-raises recorded transport errors as the same httpx
exception type, constructed with the request, so an SDK's retry loop makes
the same attempts.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from replay._capture import exc as _exc
from replay._capture import patch as _patch
from replay._capture.http.common import (
    CHANNEL,
    Pacer,
    canonical_body,
    canonical_url,
    config_of,
    read_past,
    request_head,
    response_value,
    served_headers,
)
from replay._capture.http.recording import Recorder, direct_writer, response_pairs
from replay._capture.session import BUSY, Pending, Session, current
from replay._cassette.errors import NetworkBlockedError, ReplayError
from replay._cassette.events import Chunk, RecordedError, Value

MODULES = ("httpx", "httpx2")
"""The httpx-compatible modules intercepted, when installed."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_perf_ns = time.perf_counter_ns


# -- errors ----------------------------------------------------------------------
def rebuild_error(module: Any, recorded: RecordedError, request: Any, seq: int) -> BaseException:
    """The recorded exception again; httpx errors get the request they are about.

    An error recorded through the other httpx module (``httpx`` vs ``httpx2``)
    comes back as this module's class of the same name, so the SDK in use
    catches it.
    """
    head, _, name = recorded.type.rpartition(".")
    root = head.split(".", 1)[0]
    cls = getattr(module, name, None) if root in MODULES else None
    exc: BaseException
    if isinstance(cls, type) and issubclass(cls, module.HTTPError):
        if issubclass(cls, module.RequestError):
            exc = cls(recorded.message, request=request)
        else:
            exc = cls(recorded.message)
        exc.add_note(f"[agent-replay] replayed from event #{seq}; recorded traceback:\n"
                     f"{recorded.traceback}")
        return exc
    return _exc.rebuild(recorded, seq)


# -- the module kit --------------------------------------------------------------
class _Kit:
    """Everything module-specific: stream classes, originals, patched methods."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.name: str = module.__name__
        self.original_sync: Callable[..., Any] = module.HTTPTransport.handle_request
        self.original_async: Callable[..., Any] = module.AsyncHTTPTransport.handle_async_request
        kit = self

        class RecordingStream(module.SyncByteStream):  # type: ignore[misc]
            """A live response body, recorded chunk by chunk as the caller reads it."""

            def __init__(self, inner: Any, rec: Recorder) -> None:
                self._inner = inner
                self._rec = rec

            def __iter__(self) -> Iterator[bytes]:
                rec = self._rec
                datas, times, base = rec.datas, rec.times, rec.base  # rec.add, inlined
                it = iter(self._inner)
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
                    datas.append(data)
                    times.append(_perf_ns() - base)
                    yield data
                rec.complete()

            def close(self) -> None:
                try:
                    self._inner.close()
                finally:
                    self._rec.complete("closed-early")

        class AsyncRecordingStream(module.AsyncByteStream):  # type: ignore[misc]
            """The async twin of ``RecordingStream``."""

            def __init__(self, inner: Any, rec: Recorder) -> None:
                self._inner = inner
                self._rec = rec

            async def __aiter__(self) -> AsyncIterator[bytes]:
                rec = self._rec
                datas, times, base = rec.datas, rec.times, rec.base  # rec.add, inlined
                it = self._inner.__aiter__()
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
                    datas.append(data)
                    times.append(_perf_ns() - base)
                    yield data
                rec.complete()

            async def aclose(self) -> None:
                try:
                    await self._inner.aclose()
                finally:
                    self._rec.complete("closed-early")

        class ReplayStream(module.SyncByteStream, module.AsyncByteStream):  # type: ignore[misc]
            """A recorded body: the same chunks, at once or at the recorded pace."""

            def __init__(self, chunks: tuple[Chunk, ...], pacer: Pacer,
                         tail: Callable[[], BaseException] | None) -> None:
                self._chunks = chunks
                self._pacer = pacer
                self._tail = tail

            def __iter__(self) -> Iterator[bytes]:
                pacer = self._pacer
                for c in self._chunks:
                    wait = pacer.delay(c.at_ns)
                    if wait:
                        _patch._sleep(wait)
                    yield c.data
                if self._tail is not None:
                    raise self._tail()

            async def __aiter__(self) -> AsyncIterator[bytes]:
                pacer = self._pacer
                for c in self._chunks:
                    wait = pacer.delay(c.at_ns)
                    if wait:
                        await _patch._asyncio_sleep(wait)
                    yield c.data
                if self._tail is not None:
                    raise self._tail()

            def close(self) -> None:
                pass

            async def aclose(self) -> None:
                pass

        class RecordedTransport(module.BaseTransport, module.AsyncBaseTransport):  # type: ignore[misc]
            """``inner``, recorded and replayed by agent-replay."""

            def __init__(self, wrapped: Any) -> None:
                self.inner = wrapped

            def handle_request(self, request: Any) -> Any:
                s = current()
                if s is None or BUSY.get():
                    return self.inner.handle_request(request)
                return kit.send(s, self.inner.handle_request, request)

            async def handle_async_request(self, request: Any) -> Any:
                s = current()
                if s is None or BUSY.get():
                    return await self.inner.handle_async_request(request)
                return await kit.asend(s, self.inner.handle_async_request, request)

            def close(self) -> None:
                if hasattr(self.inner, "close"):
                    self.inner.close()

            async def aclose(self) -> None:
                if hasattr(self.inner, "aclose"):
                    await self.inner.aclose()

            def __repr__(self) -> str:
                return f"replay.httpx_transport({self.inner!r})"

        self.RecordingStream = RecordingStream
        self.Wrapper = RecordedTransport
        self.AsyncRecordingStream = AsyncRecordingStream
        self.ReplayStream = ReplayStream

        def handle_request(transport: Any, request: Any) -> Any:
            s = current()
            if s is None or BUSY.get():
                return kit.original_sync(transport, request)
            return kit.send(s, lambda r: kit.original_sync(transport, r), request)

        async def handle_async_request(transport: Any, request: Any) -> Any:
            s = current()
            if s is None or BUSY.get():
                return await kit.original_async(transport, request)
            return await kit.asend(s, lambda r: kit.original_async(transport, r), request)

        handle_request.__qualname__ = "HTTPTransport.handle_request"
        handle_async_request.__qualname__ = "AsyncHTTPTransport.handle_async_request"
        self.patched_sync = handle_request
        self.patched_async = handle_async_request

    # -- shared steps ----------------------------------------------------------
    def _request_value(self, request: Any) -> dict[str, Value]:
        """``request_value`` of ``request``: its headers looked at once (display form and
        content type, cached by the raw list)."""
        head, ctype = request_head(request.headers.raw)
        return {"method": request.method.upper(), "url": canonical_url(str(request.url)),
                "body": canonical_body(request.content, ctype), "headers": dict(head)}

    def _guard(self, session: Session, request: Any) -> None:
        """Strict replay: a request outside the recorded run may not reach the network."""
        if not session.replaying:
            return
        url = request.url
        port = url.port or _DEFAULT_PORTS.get(url.scheme)
        if not config_of(session).allows(url.host, port):
            raise NetworkBlockedError(url.host, port, "an HTTP request outside the recorded run")

    def _record(self, pending: Pending, response: Any, is_async: bool) -> Any:
        ext = response.extensions
        version = ext.get("http_version", b"HTTP/1.1")
        reason = ext.get("reason_phrase", b"")
        pairs, encoding = response_pairs(response.headers)
        head = response_value(
            response.status_code,
            reason.decode("latin-1") if isinstance(reason, bytes) else str(reason), pairs,
            version.decode("latin-1") if isinstance(version, bytes) else str(version))
        meta: dict[str, Value] = {"client": self.name, "head_ns": pending.elapsed_ns()}
        rec = Recorder(pending, head, meta, encoding, direct_writer(pending.session))
        if hasattr(response, "_content"):  # built with content=...: already read
            if response._content:
                rec.add(response._content)
            rec.complete()
            return response
        cls = self.AsyncRecordingStream if is_async else self.RecordingStream
        response.stream = cls(response.stream, rec)
        return response

    def _replayed(self, session: Session, pending: Pending, request: Any,
                  pacer: Pacer) -> tuple[Any, float]:
        """The response to hand back (or the exception to raise), and the wait before."""
        ev = pending.recorded
        assert ev is not None
        resp = ev.response
        if not isinstance(resp, dict):
            if ev.error is None:
                raise ReplayError(f"event #{ev.seq} on channel 'http' holds no HTTP response")
            return rebuild_error(self.module, ev.error, request, ev.seq), pacer.delay(
                ev.duration_ns)
        meta = ev.meta
        tail: Callable[[], BaseException] | None = None
        error = ev.error
        if error is not None:
            def tail() -> BaseException:
                return rebuild_error(self.module, error, request, ev.seq)
        elif meta.get("stream") in ("closed-early", "left-open"):
            def tail() -> BaseException:
                return read_past(session, pending, ev)
        reason = str(resp.get("reason") or "")
        version = str(resp.get("http_version") or "HTTP/1.1")
        status = resp.get("status")
        response = self.module.Response(
            status if isinstance(status, int) else 200,
            headers=served_headers(resp, meta),
            stream=self.ReplayStream(ev.chunks, pacer, tail),
            extensions={"http_version": version.encode("latin-1"),
                        "reason_phrase": reason.encode("latin-1")},
            request=request,
        )
        head_ns = meta.get("head_ns")
        return response, pacer.delay(head_ns if isinstance(head_ns, int) else 0)

    # -- sync / async ----------------------------------------------------------
    def send(self, session: Session, send: Callable[[Any], Any], request: Any) -> Any:
        """Record, replay or pass through one request (sync)."""
        request.read()
        pending = session.begin(CHANNEL, self._request_value(request))
        if pending is None:
            self._guard(session, request)
            return send(request)
        if pending.recorded is not None:
            pacer = Pacer(config_of(session).speed)
            out, wait = self._replayed(session, pending, request, pacer)
            if wait:
                _patch._sleep(wait)
            if isinstance(out, BaseException):
                raise out
            return out
        token = BUSY.set(True)
        try:
            response = send(request)
        except Exception as exc:
            BUSY.reset(token)
            pending.fail(exc, meta={"client": self.name})
            raise
        BUSY.reset(token)
        return self._record(pending, response, False)

    async def asend(self, session: Session, send: Callable[[Any], Any], request: Any) -> Any:
        """Record, replay or pass through one request (async)."""
        await request.aread()
        pending = session.begin(CHANNEL, self._request_value(request))
        if pending is None:
            self._guard(session, request)
            return await send(request)
        if pending.recorded is not None:
            pacer = Pacer(config_of(session).speed)
            out, wait = self._replayed(session, pending, request, pacer)
            if wait:
                await _patch._asyncio_sleep(wait)
            if isinstance(out, BaseException):
                raise out
            return out
        token = BUSY.set(True)
        try:
            response = await send(request)
        except Exception as exc:
            BUSY.reset(token)
            pending.fail(exc, meta={"client": self.name})
            raise
        BUSY.reset(token)
        return self._record(pending, response, True)


_KITS: dict[str, _Kit] = {}
_KITS_LOCK = threading.Lock()


def kit(module: Any) -> _Kit:
    """The kit of an httpx-compatible module (made once, before any patching)."""
    with _KITS_LOCK:
        k = _KITS.get(module.__name__)
        if k is None:
            k = _KITS[module.__name__] = _Kit(module)
        return k


def _installed(name: str) -> Any:
    import sys
    module = sys.modules.get(name)
    if module is not None:
        return module
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def patches() -> list[tuple[object, str, object]]:
    """The default transports of every installed httpx module (a ``_patch`` provider)."""
    out: list[tuple[object, str, object]] = []
    for name in MODULES:
        module = _installed(name)
        if module is None:
            continue
        k = kit(module)
        out.append((module.HTTPTransport, "handle_request", k.patched_sync))
        out.append((module.AsyncHTTPTransport, "handle_async_request", k.patched_async))
    return out


# -- explicit wrapper ------------------------------------------------------------
def _module_of(transport: object) -> Any:
    import sys
    for name in MODULES:
        module = sys.modules.get(name)
        if module is not None and isinstance(
                transport, module.BaseTransport | module.AsyncBaseTransport):
            return module
    raise TypeError(f"httpx_transport() wraps an httpx or httpx2 transport, not "
                    f"{type(transport).__module__}.{type(transport).__qualname__}")


def httpx_transport(inner: Any) -> Any:
    """Wrap an httpx or httpx2 transport so requests through it are recorded and replayed.

    For clients you build yourself with a custom transport::

        client = httpx.Client(transport=replay.httpx_transport(httpx.HTTPTransport()))

    The wrapper is a transport of the same module, sync and/or async as
    ``inner`` is. Outside a record/play session it simply delegates.
    """
    module = _module_of(inner)
    k = kit(module)

    return k.Wrapper(inner)
