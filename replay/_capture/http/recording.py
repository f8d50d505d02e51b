"""Recording one live HTTP response (httpx and httpx2): its chunks as the caller reads
them, then its event, exactly once.

The event is written when the stream is exhausted, fails or is closed. A
record-only session writing a journal takes the short path
(:func:`~replay._cassette.httprecord.write_http`: the exchange's parts packed
once, one redaction scan, no :class:`~replay._cassette.events.Event` built), the
same bytes ``Pending.finish`` writes through the session; anything else, or an
exchange the short path declines, goes through ``Pending.finish`` / ``fail``.
"""

from __future__ import annotations

import operator
import threading
from typing import Any

from replay._capture.http.common import Pairs, header_get, header_pairs
from replay._capture.http.decoding import decode_chunks
from replay._capture.pending import Pending
from replay._cassette.events import Chunk, Value
from replay._cassette.httprecord import write_http
from replay._cassette.writer import CassetteWriter


class Recorder:
    """A live response's chunks; completes its event exactly once.

    ``writer``: the session's journal writer when the event may be written by
    the short path (:func:`~replay._cassette.httprecord.write_http`, the bytes
    ``Pending.finish`` would have written through the session); None: the long way.
    """

    __slots__ = ("base", "datas", "done", "encoding", "head", "lock", "meta", "pending",
                 "times", "writer")

    def __init__(self, pending: Pending, head: dict[str, Value], meta: dict[str, Value],
                 encoding: str | None, writer: CassetteWriter | None) -> None:
        self.pending = pending
        self.head = head
        self.meta = meta
        self.encoding = encoding
        self.writer = writer
        self.datas: list[bytes] = []
        """The chunks as they reached the caller."""
        self.times: list[int] = []
        """Each chunk's arrival, ns after the event's start: ``perf_counter_ns() - base``."""
        self.base = pending.session.t0 + pending.start_ns
        self.done = False
        self.lock = threading.Lock()
        # left open by its caller (an exception while reading it): completed as it
        # stands when the run stops, not when a collector finds it after the run
        pending.session.unfinished[id(self)] = self.left_open

    def left_open(self) -> None:
        self.complete("left-open")

    def add(self, data: bytes) -> None:
        self.datas.append(data)
        self.times.append(self.pending.elapsed_ns())

    def complete(self, state: str | None = None, exc: BaseException | None = None) -> None:
        with self.lock:
            if self.done:
                return
            self.done = True
        self.pending.session.unfinished.pop(id(self), None)
        datas, times = self.datas, self.times
        meta = self.meta  # completed once (above): the event's own, no copy needed
        if self.encoding is not None:
            decoded = decode_chunks(_chunks(datas, times), self.encoding)
            if decoded is not None:
                datas, times = [c.data for c in decoded], [c.at_ns for c in decoded]
                meta["decoded"] = self.encoding
        pending = self.pending
        if exc is not None:
            meta["stream"] = "error"
            # A stream that broke after its headers keeps both its head and the error.
            pending.fail(exc, response=self.head, chunks=_chunks(datas, times), meta=meta)
            return
        if state is not None:
            meta["stream"] = state
        writer = self.writer
        if writer is not None and pending.meta is None:
            session: Any = pending.session
            if session.active and not session.listeners and write_http(
                    writer, pending.seq, pending.start_ns, pending.elapsed_ns(), pending.task,
                    pending.site, pending.parent, pending.request, self.head, datas, times,
                    meta):
                session._written += 1  # as Session.emit counts what it hands the writer
                return
        pending.finish(self.head, chunks=_chunks(datas, times), meta=meta)


_LOWER = operator.itemgetter(1)


def response_pairs(headers: Any) -> tuple[Pairs, str | None]:
    """An httpx response's headers as stored (``header_pairs`` of ``headers.raw``), and
    its first ``Content-Encoding`` (as ``header_get`` finds it), read from the
    ``(name, lower-case name, value)`` triples httpx keeps when it has them."""
    triples = getattr(headers, "_list", None)
    if type(triples) is list:
        try:
            pairs = [[k.decode("latin-1"), v.decode("latin-1")] for k, _, v in triples]
            if b"content-encoding" not in map(_LOWER, triples):
                return pairs, None
        except (AttributeError, TypeError, ValueError, IndexError):
            pass  # not the triples of bytes this expects: the public way
    pairs = header_pairs(headers.raw)
    return pairs, header_get(pairs, "content-encoding")  # type: ignore[arg-type]


def _chunks(datas: list[bytes], times: list[int]) -> tuple[Chunk, ...]:
    return tuple(map(Chunk, datas, times))


def direct_writer(session: Any) -> CassetteWriter | None:
    """The writer a recorded exchange of ``session`` may be written to directly: a
    record-only session's journal writer (``Session.read``'s), while no listener
    wants the events."""
    writer: CassetteWriter | None = session._values
    return writer if writer is not None and not session.listeners else None
