"""``http.client`` (and so ``urllib.request`` and clients built on it) as ``http`` events.

The capture point is the standard library's own connection and response
methods, replaced on the real classes (never a class swapped for a look-alike):
``HTTPConnection.putrequest``/``putheader``/``endheaders``/``send``/
``getresponse``/``connect`` (and ``HTTPSConnection.connect``), and
``HTTPResponse.read``/``read1``/``readinto``/``readline``/``peek``/``close``.

Recording: the request is begun when its headers are sent (``endheaders``,
whose body argument is the whole body for ``request()`` and ``urlopen``; a
request whose body follows by ``send()`` is begun at ``getresponse``), the live
exchange runs with :data:`BUSY` set, and the response the program gets is the
real ``HTTPResponse``: each read it makes (``read``, ``read(n)``, ``read1``,
``readinto``, ``readline``, iteration) is one chunk with its arrival time, and
the event is written through :class:`~.recording.Recorder` (the httpx path's)
when the body is read to its end, fails or is closed (``closed-early``; an
unread response the program drops is closed by the garbage collector, which
completes it the same way). The body is stored as the program read it (a gzip
body stays gzip: ``http.client`` does not decode).

Replay: no socket is opened. The connection is given a stand-in socket that
swallows what is sent; ``getresponse`` matches the request and loads the
stand-in with the recorded head and chunks laid out as HTTP/1.1 bytes (each
chunk its own HTTP chunk when the response was chunked), then lets the real
``getresponse`` parse them: the program gets a real ``HTTPResponse`` with the
same status, headers, body and read boundaries, keep-alive and
``will_close`` as live. A recorded failure is raised again where it was raised
live: at ``endheaders`` (``meta["phase"] == "send"``: a refused connection) or at
``getresponse``; a failure in the body comes after the same chunks.

urllib3 (and so requests) subclasses ``HTTPConnection``: its requests are recorded
by vcrpy's stubs (:mod:`.vcr`), which run the live connection with :data:`BUSY`
set, so they pass through here and are recorded once. A urllib3 connection that
no stub holds is recorded here.
"""

from __future__ import annotations

import http.client
import os
import sys
import sysconfig
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from replay._capture import patch as _patch
from replay._capture.http.common import (
    CHANNEL,
    Pacer,
    canonical_body,
    config_of,
    request_value,
    response_value,
)
from replay._capture.http.recording import Recorder, direct_writer
from replay._capture.http.stdwire import Body, ReplaySocket, tail, wire
from replay._capture.http.vcr import rebuild
from replay._capture.session import BUSY, Pending, Session, current
from replay._cassette.errors import NetworkBlockedError, ReplayError
from replay._cassette.events import Event, Value

CLIENT = "http.client"
"""``meta["client"]`` of the events recorded here."""

_EX = "_agent_replay_exchange"
_RESP = "_agent_replay_reading"

HTTPConnection = http.client.HTTPConnection
HTTPSConnection = http.client.HTTPSConnection
HTTPResponse = http.client.HTTPResponse

_STDLIB_HTTP = tuple(os.path.normcase(os.path.join(d, m)) + os.sep
                     for d in {sysconfig.get_paths()["stdlib"],
                               os.path.realpath(sysconfig.get_paths()["stdlib"])}
                     for m in ("http", "urllib"))


def _caller(frame: FrameType | None) -> FrameType | None:
    """The first frame outside agent-replay and the standard library's ``http`` and
    ``urllib`` packages: the code that made the request. (Those packages are
    infrastructure to the call-site walk, whose clock reads are not inputs; their
    HTTP requests are the caller's.)"""
    ours = _OURS
    while frame is not None:
        name = os.path.normcase(frame.f_code.co_filename)
        if not name.startswith(_STDLIB_HTTP) and not name.startswith(ours):
            return frame
        frame = frame.f_back
    return None


_OURS = os.path.normcase(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))) + os.sep


class _Exchange:
    """One request on a connection, from ``putrequest`` to ``getresponse``."""

    __slots__ = ("body", "collecting", "deferred", "headers", "method", "pending",
                 "session", "url")

    def __init__(self, session: Session, method: str, url: str) -> None:
        self.session = session
        self.method = method
        self.url = url
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        """Bytes sent by ``send()`` after the headers (a request begun at ``getresponse``)."""
        self.collecting = False
        self.deferred = False
        self.pending: Pending | None = None

    def value(self, body: bytes | None) -> dict[str, Value]:
        ctype = next((v for k, v in self.headers if k.lower() == "content-type"), None)
        return request_value(self.method, self.url, canonical_body(body, ctype), self.headers)


def _text(x: Any) -> str:
    if isinstance(x, bytes | bytearray):
        return bytes(x).decode("latin-1")
    return str(x)


def _absolute(conn: Any, url: str) -> str:
    if url.startswith(("http://", "https://")):
        return url  # a request sent to a proxy names its target in full
    scheme = "https" if isinstance(conn, HTTPSConnection) else "http"
    host, port = conn.host, conn.port
    tunnel = getattr(conn, "_tunnel_host", None)
    if tunnel:
        host, port = tunnel, getattr(conn, "_tunnel_port", None) or port
    host = f"[{host}]" if ":" in str(host) and not str(host).startswith("[") else host
    return f"{scheme}://{host}:{port}{url if url.startswith('/') else '/' + url}"


def _materialize(conn: Any, body: Any) -> tuple[Any, bytes | None]:
    """(the body to send, its bytes for the event): a file or an iterable is read once
    here, as ``http.client`` would read it, and sent as the list of its blocks."""
    if body is None:
        return None, None
    if isinstance(body, str):
        return body, body.encode("utf-8")
    if hasattr(body, "read"):
        blocks = []
        while True:
            block = body.read(conn.blocksize)
            if not block:
                break
            blocks.append(block.encode("iso-8859-1") if isinstance(block, str) else block)
        return blocks, b"".join(blocks)
    try:
        return body, bytes(memoryview(body))
    except TypeError:
        pass
    blocks = [b.encode("iso-8859-1") if isinstance(b, str) else b for b in body]
    return blocks, b"".join(bytes(b) for b in blocks)


# -- the connection --------------------------------------------------------------
_orig: dict[str, Any] = {}


def _exchange(conn: Any) -> _Exchange | None:
    ex: _Exchange | None = conn.__dict__.get(_EX)
    return ex if ex is not None and ex.session.active else None


def putrequest(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> None:
    """``HTTPConnection.putrequest``: a request of a run starts being captured."""
    _orig["putrequest"](self, method, url, *args, **kwargs)
    s = current()
    if s is None or BUSY.get():
        self.__dict__.pop(_EX, None)
        return
    self.__dict__[_EX] = _Exchange(s, _text(method), _absolute(self, _text(url)))


def putheader(self: Any, header: Any, *values: Any) -> None:
    """``HTTPConnection.putheader``: kept for the event (never matched)."""
    _orig["putheader"](self, header, *values)
    ex = self.__dict__.get(_EX)
    if ex is not None:
        ex.headers.append((_text(header), ", ".join(_text(v) for v in values)))


def _begin(ex: _Exchange, body: bytes | None) -> Pending | None:
    return ex.session.begin(CHANNEL, ex.value(body), frame=_caller(sys._getframe(1)))


def _guard(conn: Any, session: Session) -> None:
    """Strict replay: a request the run does not own may not reach the network."""
    if not session.replaying:
        return
    host, port = conn.host, conn.port
    if not config_of(session).allows(str(host), port):
        raise NetworkBlockedError(str(host), port, "an HTTP request outside the recorded run")


def _stand_in(conn: Any) -> None:
    if not isinstance(conn.sock, ReplaySocket):
        real, conn.sock = conn.sock, ReplaySocket()
        if real is not None:  # connected before the replay: not used by it
            real.close()


def _expects_body(ex: _Exchange) -> bool:
    for name, value in ex.headers:
        low = name.lower()
        if low == "transfer-encoding" or (low == "content-length" and value.strip() != "0"):
            return True
    return False


def endheaders(self: Any, message_body: Any = None, **kwargs: Any) -> None:
    """``HTTPConnection.endheaders``: the request is begun (recorded or matched) and
    sent, live or to the replayed connection's stand-in socket."""
    original = _orig["endheaders"]
    ex = _exchange(self)
    if ex is None or BUSY.get():
        return original(self, message_body, **kwargs)  # type: ignore[no-any-return]
    message_body, body = _materialize(self, message_body)
    s = ex.session
    if body is None and _expects_body(ex):
        ex.deferred = True  # the body follows by send(): begun at getresponse
        if s.replaying:
            _stand_in(self)
            original(self, message_body, **kwargs)
            ex.collecting = True
            return None
    else:
        pending = ex.pending = _begin(ex, body)
        if pending is None:  # not the run's request
            self.__dict__.pop(_EX, None)
            if isinstance(self.sock, ReplaySocket):
                _guard(self, s)
            return original(self, message_body, **kwargs)  # type: ignore[no-any-return]
        ev = pending.recorded
        if ev is not None:  # answered by the recording: nothing leaves the process
            if not isinstance(ev.response, dict) and ev.meta.get("phase") == "send":
                self.__dict__.pop(_EX, None)
                raise _error(ev)
            _stand_in(self)
            return original(self, message_body, **kwargs)  # type: ignore[no-any-return]
    token = BUSY.set(True)
    try:
        original(self, message_body, **kwargs)
    except Exception as exc:
        pending = ex.pending if ex.pending is not None else _begin(ex, body)
        self.__dict__.pop(_EX, None)
        if pending is not None:
            pending.fail(exc, meta={"client": CLIENT, "phase": "send"})
        raise
    finally:
        BUSY.reset(token)
    ex.collecting = ex.deferred
    return None


def _error(ev: Event) -> BaseException:
    if ev.error is None:
        return ReplayError(f"event #{ev.seq} on channel 'http' holds no HTTP response")
    return rebuild(ev.error, ev.seq)


def send(self: Any, data: Any) -> None:
    """``HTTPConnection.send``: a body sent after the headers is kept for the event."""
    original = _orig["send"]
    ex = self.__dict__.get(_EX)
    if ex is None or not ex.collecting or BUSY.get():
        return original(self, data)  # type: ignore[no-any-return]
    data, raw = _materialize(self, data)
    if raw:
        ex.body.append(raw)
    if ex.session.replaying:
        return original(self, data)  # type: ignore[no-any-return]
    token = BUSY.set(True)
    try:
        return original(self, data)  # type: ignore[no-any-return]
    finally:
        BUSY.reset(token)


def getresponse(self: Any) -> Any:
    """``HTTPConnection.getresponse``: the real response, recorded as it is read, or
    parsed from the recording."""
    original = _orig["getresponse"]
    ex = _exchange(self)
    if ex is None or BUSY.get():
        return original(self)
    self.__dict__.pop(_EX, None)
    ex.collecting = False
    s = ex.session
    pending = ex.pending
    if ex.deferred and pending is None:
        pending = _begin(ex, b"".join(ex.body) if ex.body else None)
        if pending is None:
            if isinstance(self.sock, ReplaySocket):
                _guard(self, s)
            return original(self)
    if pending is None:
        return original(self)
    ev = pending.recorded
    if ev is not None:
        return _replayed(self, s, pending, ev)
    token = BUSY.set(True)
    try:
        response = original(self)
    except Exception as exc:
        pending.fail(exc, meta={"client": CLIENT})
        raise
    finally:
        BUSY.reset(token)
    _record(pending, response)
    return response


def _replayed(conn: Any, session: Session, pending: Pending, ev: Event) -> Any:
    pacer = Pacer(config_of(session).speed)
    if not isinstance(ev.response, dict):
        wait = pacer.delay(ev.duration_ns)
        if wait:
            _patch._sleep(wait)
        exc = _error(ev)
        if isinstance(exc, ConnectionError):
            conn.close()  # as getresponse does when the peer hangs up
        raise exc
    pieces = wire(ev)
    head_ns = ev.meta.get("head_ns")
    wait = pacer.delay(head_ns if isinstance(head_ns, int) else 0)
    if wait:
        _patch._sleep(wait)
    _stand_in(conn)
    conn.sock.body = Body(pieces, pacer, tail(session, pending, ev))
    return _orig["getresponse"](conn)


def _record(pending: Pending, response: Any) -> None:
    msg = response.msg
    pairs = [[_text(k), _text(v)] for k, v in msg.items()]
    head = response_value(response.status, _text(response.reason or ""), pairs,
                          "HTTP/1.0" if response.version == 10 else "HTTP/1.1")
    meta: dict[str, Value] = {"client": CLIENT, "head_ns": pending.elapsed_ns()}
    rec = Recorder(pending, head, meta, None, direct_writer(pending.session))
    if response.fp is None or (response.length == 0 and not response.chunked):
        rec.complete()  # no body to read (HEAD, 204, 304, Content-Length: 0)
        return
    response.__dict__[_RESP] = _Reading(rec)


def connect_patch(original: Callable[..., Any]) -> Callable[..., Any]:
    """``connect`` of ``HTTPConnection`` or ``HTTPSConnection``: a replayed run's
    connection gets the stand-in socket; a recorded run's connects for a captured
    request."""
    def connect(self: Any) -> None:
        s = current()
        if s is None or BUSY.get():
            return original(self)  # type: ignore[no-any-return]
        if s.replaying:
            _stand_in(self)
            return None
        token = BUSY.set(True)
        try:
            return original(self)  # type: ignore[no-any-return]
        finally:
            BUSY.reset(token)
    connect.__name__ = connect.__qualname__ = "connect"
    connect.__doc__ = original.__doc__
    return connect


# -- the response ----------------------------------------------------------------
class _Reading:
    """A recorded response being read: its recorder, and whether one of its read
    methods is running (``read(n)`` may read through ``readinto``: one chunk)."""

    __slots__ = ("inside", "rec")

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.inside = False


def _reader(name: str, into: bool = False) -> Callable[..., Any]:
    def read(self: Any, *args: Any, **kwargs: Any) -> Any:
        original = _orig[name]
        st: _Reading | None = self.__dict__.get(_RESP)
        if st is None or st.inside or st.rec.done:
            return original(self, *args, **kwargs)
        st.inside = True
        try:
            out = original(self, *args, **kwargs)
        except Exception as exc:
            st.rec.complete(exc=exc)
            raise
        finally:
            st.inside = False
        if into:
            if out:
                st.rec.add(bytes(memoryview(args[0] if args else kwargs["b"])[:out]))
        elif out:
            st.rec.add(bytes(out))
        if self.fp is None:
            st.rec.complete()
        return out
    read.__name__ = read.__qualname__ = name
    read.__doc__ = getattr(HTTPResponse, name).__doc__
    return read


def peek(self: Any, *args: Any, **kwargs: Any) -> Any:
    """``HTTPResponse.peek``: reads nothing, but may find the end of a chunked body."""
    out = _orig["peek"](self, *args, **kwargs)
    st: _Reading | None = self.__dict__.get(_RESP)
    if st is not None and self.fp is None and not st.inside:
        st.rec.complete()
    return out


def close(self: Any) -> None:
    """``HTTPResponse.close``: a response closed before its end is recorded so."""
    st: _Reading | None = self.__dict__.get(_RESP)
    early = st is not None and self.fp is not None and not st.inside
    try:
        _orig["close"](self)
    finally:
        if st is not None:
            st.rec.complete("closed-early" if early else None)


_READERS = {"read": _reader("read"), "read1": _reader("read1"),
            "readinto": _reader("readinto", into=True), "readline": _reader("readline")}
_LOCK = threading.Lock()


def patches() -> list[tuple[object, str, object]]:
    """The ``http.client`` patches (a ``_patch`` provider)."""
    with _LOCK:
        if not _orig:
            for name in ("putrequest", "putheader", "endheaders", "send", "getresponse"):
                _orig[name] = vars(HTTPConnection)[name]
            for name in ("read", "read1", "readinto", "readline", "peek", "close"):
                _orig[name] = vars(HTTPResponse)[name]
            _orig["connect"] = connect_patch(vars(HTTPConnection)["connect"])
            _orig["tls_connect"] = connect_patch(vars(HTTPSConnection)["connect"])
    out: list[tuple[object, str, object]] = [
        (HTTPConnection, "putrequest", putrequest), (HTTPConnection, "putheader", putheader),
        (HTTPConnection, "endheaders", endheaders), (HTTPConnection, "send", send),
        (HTTPConnection, "getresponse", getresponse),
        (HTTPConnection, "connect", _orig["connect"]),
        (HTTPSConnection, "connect", _orig["tls_connect"]),
        (HTTPResponse, "peek", peek), (HTTPResponse, "close", close)]
    out += [(HTTPResponse, name, fn) for name, fn in _READERS.items()]
    return out
