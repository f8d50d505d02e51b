"""The index section of a packed version 2 cassette, read as hostile input.

:class:`IndexRecords` streams the index frame's records (bounded
decompression, each record's length, CRC32C and kind checked) and then checks
the trailer; :func:`read_index` gathers them into an
:class:`~replay._cassette.index.Index` (``eventlog.py`` reads events through
it); ``verify`` streams them twice instead, holding only a batch: once into an
:class:`IndexScan` (:func:`intact_index`), then beside the frames into
:class:`Rows`, which compares each event with its row (``framecheck.py``).
:func:`check_index` compares an index with what a sequential read found.
"""

from __future__ import annotations

import array
from collections.abc import Iterable, Iterator
from typing import IO, Any, cast

import crc32c
import msgpack
import zstandard

from replay._cassette import index as ix
from replay._cassette.codec import _FRAMING, OverLimitError
from replay._cassette.decoder import DecodeError, Decoder, check_values, reason
from replay._cassette.errors import (
    CassetteCorruptError,
    CassetteLimitError,
    CassetteTruncatedError,
)
from replay._cassette.events import Event
from replay._cassette.layout import _BLOCK_MAX, _TRAILER2, _UNIT_MAX, TRAILER2_MAGIC, Limits
from replay._cassette.sections import _Damage, _Frame


def _unpack_index(payload: bytes, limits: Limits) -> Any:
    check_values(payload, limits.max_record_values, "index record")

    def no_ext(code: int, data: bytes) -> Any:
        raise DecodeError(f"index record holds msgpack extension type {code}")

    return msgpack.unpackb(payload, raw=False, strict_map_key=False, ext_hook=no_ext)


def read_index(f: IO[bytes], at: int, size: int, limits: Limits,
               columns: Iterable[str] | None = None) -> ix.Index:
    """Read the index frame at ``at`` and the trailer after it; raise _Damage.
    ``columns``: the event columns to hold (see :class:`~replay._cassette.index.Index`)."""
    index = ix.Index(columns)
    records = IndexRecords(f, at, size, limits)
    for m in records:
        try:
            if m["k"] == "ix":
                index.add_ix(m)
            else:
                index.set_frames(m)
        except (ValueError, TypeError, OverflowError) as exc:
            raise _Damage(CassetteCorruptError, f"bad index: {reason(exc)}",
                          records.pos) from None
    return index


class IndexRecords:
    """The decoded records of the index frame at ``at`` (each a map whose ``k`` is
    ``"ix"``, then one ``"frames"``), then the trailer checked; raise _Damage.

    ``pos`` is the file offset the frame has been read to (where a record that
    does not fit is reported). Memory: one block of output and one record.
    """

    def __init__(self, f: IO[bytes], at: int, size: int, limits: Limits) -> None:
        self.pos = at
        self._it = self._records(f, at, size, limits)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._it

    def _records(self, f: IO[bytes], at: int, size: int, limits: Limits
                 ) -> Iterator[dict[str, Any]]:
        f.seek(at)
        frame = _Frame(f, at, limits)
        dctx = zstandard.ZstdDecompressor(max_window_size=limits.max_window_size)
        reader = dctx.stream_reader(cast("IO[bytes]", frame), read_size=_UNIT_MAX,
                                    read_across_frames=False)
        buf, total = bytearray(), 0
        budget = limits.decoded_budget(size)
        has_frames = False
        while True:
            try:
                out = reader.read1(_BLOCK_MAX)
            except zstandard.ZstdError as exc:
                raise _Damage(CassetteCorruptError, f"index: {exc}", frame.pos) from None
            self.pos = frame.pos
            if not out:
                break
            total += len(out)
            if total > budget:
                raise _Damage(CassetteLimitError, f"index decodes to more than the "
                              f"{budget}-byte budget", frame.pos)
            buf += out
            while len(buf) >= 8:
                length, crc = _FRAMING.unpack_from(buf, 0)
                if length > limits.max_record_size:
                    raise _Damage(CassetteLimitError, f"index record of {length} bytes, over "
                                  f"the {limits.max_record_size} limit", frame.pos)
                if len(buf) < 8 + length:
                    break
                payload = bytes(buf[8:8 + length])
                del buf[:8 + length]
                try:
                    if crc32c.crc32c(payload) != crc:
                        raise DecodeError("index record checksum mismatch")
                    m = _unpack_index(payload, limits)
                    kind = m.get("k") if type(m) is dict else None
                    if has_frames:
                        raise DecodeError("index record after the frames table")
                    if kind not in ("ix", "frames"):
                        raise DecodeError(f"unknown index record kind {kind!r}")
                    has_frames = kind == "frames"
                except OverLimitError as exc:
                    raise _Damage(CassetteLimitError, str(exc), frame.pos) from None
                except (ValueError, TypeError, OverflowError, RecursionError) as exc:
                    raise _Damage(CassetteCorruptError, f"bad index: {reason(exc)}",
                                  frame.pos) from None
                yield m
        if frame.truncated:
            raise _Damage(CassetteTruncatedError, "file ends inside the index", size)
        if not frame.done or buf:
            raise _Damage(CassetteCorruptError, "index frame ends inside a record", frame.pos)
        if not has_frames:
            raise _Damage(CassetteCorruptError, "index has no frames table", frame.pos)
        q = frame.pos
        expect = _TRAILER2.pack(TRAILER2_MAGIC, at, q - at, frame.crc)
        got = frame.rest(_TRAILER2.size + 1)
        if got[:_TRAILER2.size] == expect:
            if len(got) > _TRAILER2.size:
                raise _Damage(CassetteCorruptError, "bytes after the trailer",
                              q + _TRAILER2.size)
            return
        if len(got) < _TRAILER2.size and expect.startswith(got):
            raise _Damage(CassetteTruncatedError, "file ends inside the trailer", size)
        for lo, hi, what in ((0, 4, "bad trailer magic"),
                             (4, 12, "trailer index offset mismatch"),
                             (12, 20, "trailer index length mismatch")):
            if got[lo:hi] != expect[lo:hi]:
                raise _Damage(CassetteCorruptError, what, q + lo)
        raise _Damage(CassetteCorruptError, "index checksum mismatch (trailer)", q + 20)


def check_index(index: ix.Index, frames: list[tuple[int, int, int]], decoder: Decoder,
                data_start: int, data_end: int) -> None:
    """Check the index against what a sequential read found; raise _Damage."""
    try:
        index.check(data_start, data_end)
        f = index.frames
        seen = [(off, ln) for off, ln, _ in frames]
        if seen != list(zip(f["off"], f["len"], strict=True)):
            raise ValueError("frame table does not match the frames")
        if [r for _, _, r in frames[:-1]] != list(f["raw"][1:]):
            raise ValueError("frame table's raw offsets do not match the frames")
        if len(index) != decoder.events or len(index.bpos) != len(decoder.blobs):
            raise ValueError(f"index holds {len(index)} events and {len(index.bpos)} blobs; "
                             f"the file {decoder.events} and {len(decoder.blobs)}")
        if index.cols["pos"] != decoder.event_pos:
            raise ValueError("index event offsets do not match the events")
    except ValueError as exc:
        raise _Damage(CassetteCorruptError, f"bad index: {exc}", data_end) from None


class IndexScan:
    """What ``verify`` keeps of an intact index: the frame table, the channel and
    task names and the counts, each ``ix`` record checked as ``Index.add_ix`` and
    ``Index.check`` check it; :class:`Rows` reads the rows again beside the frames.
    """

    def __init__(self) -> None:
        self.frames: dict[str, array.array[int]] = {}
        self.channels: list[str] = []
        self.tasks: list[str] = []
        self.events = 0
        self.blobs = 0
        self._pos = self._bpos = -1  # the last offsets seen: each next one is greater

    def add(self, m: dict[str, Any]) -> None:
        """One index record; ValueError when it does not fit."""
        part = ix.Index()
        if m["k"] == "frames":
            part.set_frames(m)
            self.frames = part.frames
            return
        if m.get("first") != self.events or m.get("bfirst") != self.blobs:
            raise ValueError(f"index record starts at event {m.get('first')!r}, blob "
                             f"{m.get('bfirst')!r}; expected {self.events}, {self.blobs}")
        part.channels, part.tasks = self.channels, self.tasks  # extended by add_ix
        part.add_ix({**m, "first": 0, "bfirst": 0})
        for col, last in ((part.cols["pos"], "_pos"), (part.bpos, "_bpos")):
            if len(col):
                if col[0] <= getattr(self, last) or not ix._increasing(col):
                    raise ValueError("event offsets are out of order or past the data"
                                     if last == "_pos" else
                                     "blob offsets are out of order or past the data")
                setattr(self, last, col[-1])
        self.events += len(part)
        self.blobs += len(part.bpos)

    def check(self, data_start: int, data_end: int) -> None:
        """``Index.check``: the frames tile the data section, the offsets lie inside it."""
        part = ix.Index()
        part.frames = self.frames
        part.check(data_start, data_end)
        raw = sum(self.frames["rawlen"])
        if self._pos >= raw:
            raise ValueError("event offsets are out of order or past the data")
        if self._bpos >= raw:
            raise ValueError("blob offsets are out of order or past the data")


def intact_index(f: IO[bytes], start: int, size: int, limits: Limits
                 ) -> tuple[IndexScan, int] | None:
    """What verify needs of the index of a packed file whose trailer fits and whose
    index checks out (its CRC, its records, the frame table tiling the data), and the
    index's offset; else None: the file is read sequentially, which finds what is wrong."""
    if size < start + _TRAILER2.size:
        return None
    f.seek(size - _TRAILER2.size)
    magic, at, length, _ = _TRAILER2.unpack(f.read(_TRAILER2.size))
    if magic != TRAILER2_MAGIC or at + length + _TRAILER2.size != size or at < start:
        return None
    scan = IndexScan()
    try:
        for m in IndexRecords(f, at, size, limits):
            scan.add(m)
        scan.check(start, at)
    except (_Damage, ValueError, TypeError, OverflowError):
        return None
    return scan, at


class Rows:
    """Each event's index row compared with its record, one frame at a time.

    The rows come batch by batch from a second pass over the index frame, so
    the index is never held whole. ``mismatch`` keeps the first disagreement;
    the reader reports it with the index's other checks, after the last frame.
    """

    def __init__(self, batches: Iterator[dict[str, Any]], scan: IndexScan) -> None:
        self._batches = batches
        self._scan = scan
        self._cols: dict[str, array.array[int]] = {"seq": array.array("q")}
        self._at = 0  # the next row of the current batch
        self.next = 0
        """File-order number of the next event."""
        self.mismatch = ""
        self.names_follow = False
        """Add each batch's new channel and task names to the scan's (a child process,
        whose scan holds the names up to its first row only)."""
        self.got: list[tuple[Any, ...]] = []
        """(seq, start, dur, parent, flags, channel, task) of each event since the last check."""

    def add_event(self, ev: Event) -> None:
        """An event decoded by the sequential reader."""
        self.got.append((ev.seq, ev.start_ns, ev.duration_ns,
                         ix.NO_PARENT if ev.parent is None else ev.parent, ix.flags_of(ev),
                         ev.channel, ev.task))

    def drop(self) -> None:
        """Forget the rows gathered since the last :meth:`check` (a rolled-back frame)."""
        self.got = []

    def resume(self, batch: dict[str, Any], at: int) -> None:
        """Start at row ``at`` of the ``ix`` record ``batch`` (a child's first event)."""
        self._cols = {k: ix.from_bin(code, batch[k], batch["n"], k)
                      for k, code in ix.EVENT_COLUMNS.items()}
        self._at = at

    def _take(self, n: int) -> tuple[list[int], list[tuple[Any, ...]]]:
        """The next ``n`` index rows (fewer at the end of the index): their ``pos``
        column, and (seq, start, dur, parent, flags, channel, task) of each. Only
        those rows are made into tuples, however many rows one ``ix`` record holds."""
        pos: list[int] = []
        out: list[tuple[Any, ...]] = []
        chans, tasks = self._scan.channels, self._scan.tasks
        while len(out) < n:
            c = self._cols
            if self._at >= len(c["seq"]):
                m = next(self._batches, None)
                if m is None or m["k"] != "ix":
                    break
                if self.names_follow:
                    chans += m["chans"]
                    tasks += m["tasks"]
                self.resume(m, 0)
                continue
            lo = self._at
            hi = self._at = min(len(c["seq"]), lo + n - len(out))
            pos += c["pos"][lo:hi]
            out += zip(c["seq"][lo:hi], c["start"][lo:hi], c["dur"][lo:hi],
                       c["parent"][lo:hi], c["flags"][lo:hi],
                       [chans[i] for i in c["chan"][lo:hi]],
                       [tasks[i] for i in c["task"][lo:hi]], strict=True)
        return pos, out

    def check(self, positions: array.array[int]) -> None:
        """Compare the rows gathered since the last call, and the stream offsets of
        their records, with the index."""
        got, self.got = self.got, []
        lo = self.next
        self.next = lo + len(got)
        if self.mismatch:
            return
        pos, want = self._take(len(got))
        if len(want) < len(got):
            self.mismatch = f"event {lo + len(want)} has no index row"
            return
        if want != got or pos != positions.tolist():
            names = ("pos", "seq", "start", "dur", "parent", "flags", "chan", "task")
            for at, (p, w, g, q) in enumerate(zip(pos, want, got, positions, strict=True)):
                for name, a, b in zip(names, (p, *w), (q, *g), strict=True):
                    if a != b:
                        self.mismatch = f"event {lo + at}'s {name!r} column differs from " \
                            "its record"
                        return
