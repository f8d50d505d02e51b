"""The stand-in for a socket that a replayed ``http.client`` connection holds
(:mod:`.stdlib`): what is sent goes nowhere, and the next response is the recorded
event laid out as HTTP/1.1 bytes, for the real ``HTTPResponse`` to parse.

The head comes first, then a piece per recorded chunk (its own HTTP chunk when the
response was chunked), each released at one read of the socket's file and, when
paced, at its recorded time; then the last chunk or EOF, or what the recording says
follows: the recorded failure, or a divergence for a response the recorded caller
closed early.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from replay._capture import patch as _patch
from replay._capture.http.common import Pacer, read_past, served_headers
from replay._capture.http.vcr import rebuild
from replay._capture.session import Pending, Session
from replay._cassette.errors import ReplayError
from replay._cassette.events import Event


class Body(io.RawIOBase):
    """The bytes of one replayed response, a piece per read (the head, then one
    piece per recorded chunk, each after its recorded time when paced), then EOF
    or the recorded failure."""

    def __init__(self, pieces: list[tuple[bytes, int | None]], pacer: Pacer,
                 tail: Callable[[], BaseException] | None) -> None:
        super().__init__()
        self._pieces = pieces
        self._at = 0
        self._offset = 0
        self._pacer = pacer
        self._tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._at >= len(self._pieces):
            tail, self._tail = self._tail, None
            if tail is not None:
                raise tail()
            return 0
        data, at_ns = self._pieces[self._at]
        if self._offset == 0 and at_ns is not None:
            wait = self._pacer.delay(at_ns)
            if wait:
                _patch._sleep(wait)
        n = min(len(b), len(data) - self._offset)
        b[:n] = data[self._offset:self._offset + n]
        self._offset += n
        if self._offset >= len(data):
            self._at += 1
            self._offset = 0
        return n


class ReplaySocket:
    """What a replayed connection holds as its ``sock``: sends go nowhere, and the
    next response is read from the recording."""

    def __init__(self) -> None:
        self.body: Body | None = None

    def sendall(self, data: Any) -> None:
        """Sent nowhere (the request was matched against the recording)."""

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        """The next replayed response's bytes."""
        body, self.body = self.body, None
        if body is None:
            raise ReplayError("a replayed http.client connection read a response that "
                              "no recorded request answered")
        return io.BufferedReader(body)

    def settimeout(self, timeout: Any) -> None:
        pass

    def gettimeout(self) -> Any:
        return None

    def setsockopt(self, *args: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def shutdown(self, how: int) -> None:
        pass

    def fileno(self) -> int:
        return -1


def wire(ev: Event) -> list[tuple[bytes, int | None]]:
    """The recorded response as HTTP/1.1 bytes: the head, then a piece per chunk (its
    own HTTP chunk when the response was chunked), then the last chunk when the body
    was read to its end."""
    resp = ev.response
    assert isinstance(resp, dict)
    meta = ev.meta
    status = resp.get("status")
    version = "HTTP/1.0" if resp.get("http_version") == "HTTP/1.0" else "HTTP/1.1"
    headers = served_headers(resp, meta)
    chunked = any(name.lower() == "transfer-encoding" and value.lower().endswith("chunked")
                  for name, value in headers)
    reason = str(resp.get("reason") or "")
    head = [f"{version} {status if isinstance(status, int) else 200} {reason}"]
    head += [f"{name}: {value}" for name, value in headers]
    pieces: list[tuple[bytes, int | None]] = [
        ("\r\n".join(head).encode("latin-1") + b"\r\n\r\n", None)]
    for c in ev.chunks:
        if not c.data:
            continue
        data = b"%x\r\n%s\r\n" % (len(c.data), c.data) if chunked else c.data
        pieces.append((data, c.at_ns))
    if chunked and ev.error is None and meta.get("stream") is None:
        pieces.append((b"0\r\n\r\n", None))
    return pieces


def tail(session: Session, pending: Pending, ev: Event) -> Callable[[], BaseException] | None:
    """What reading past the recorded chunks raises: the recorded failure (an error
    ``http.client`` raised itself, on a short body, comes from EOF, as it did live), or
    a divergence for a stream the recorded caller closed early."""
    error = ev.error
    if error is not None:
        if error.type.startswith("http.client."):
            return None
        return lambda: rebuild(error, ev.seq)
    if ev.meta.get("stream") is not None:
        return lambda: read_past(session, pending, ev, "response")
    return None


