"""Reading a cassette as hostile input.

Bounded streaming decompression, bounded records and a decoded-bytes budget
(``decoder.py``); every failure is one :class:`~replay.CassetteError` with
its byte offset.
"""

from __future__ import annotations

import collections
import gc
import os
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, cast

import crc32c
import zstandard

from replay._cassette.codec import OverLimitError
from replay._cassette.decoder import Decoder
from replay._cassette.errors import (
    CassetteCorruptError,
    CassetteError,
    CassetteLimitError,
    CassetteTruncatedError,
)
from replay._cassette.eventlog import EventLog, NotPacked, open_packed
from replay._cassette.events import Event
from replay._cassette.indexread import IndexRecords, check_index, read_index
from replay._cassette.layout import (
    _BLOCK_MAX,
    _CHUNK,
    _HEAD,
    _TRAILER,
    _TRAILER2,
    _U32,
    _UNIT_MAX,
    JOURNAL_TAG,
    PACK_TAG,
    TRAILER2_MAGIC,
    TRAILER_MAGIC,
    Cassette,
    Header,
    Limits,
    PathArg,
    Status,
    VerifyReport,
)
from replay._cassette.sections import (
    _Damage,
    _Frame,
    _read_header,
    _recheck,
    _zero_framing,
    _zeros_to_end,
)

if TYPE_CHECKING:  # imported where verify needs them (threads, logging: not for every reader)
    from replay._cassette.framecheck import FastFrames
    from replay._cassette.indexread import Rows

# -- reading -----------------------------------------------------------------

class _Reader:
    """One pass over a cassette; attributes tell how far it got.

    What it keeps decides what its decoded-bytes budget is charged with:
    ``verify`` keeps only the types of str/bytes blobs (``keep_blob_values``),
    ``iter_events`` every blob, ``read_cassette`` the events too.
    """

    def __init__(self, path: PathArg, limits: Limits, *, keep_events: bool = False,
                 keep_blob_values: bool = True, fast: bool = False) -> None:
        self.path = os.fspath(path)
        self.fast = fast
        """Check a packed file's frames through its index (``framecheck.py``) where it
        is intact; only ``verify`` asks: it builds no event it could yield."""
        self.limits = limits
        self.header: Header | None = None
        self.decoder = Decoder(limits.max_record_size, max_values=limits.max_record_values,
                               keep_events=keep_events, keep_blob_values=keep_blob_values)
        self.file_size = 0
        self.frame: _Frame | None = None
        self.frame_start: int | None = None
        self.raw_size = 0
        self.compressed = 0
        self.index_at = -1
        self.events_checked = 0
        """Events whose offsets were compared with the index and dropped (``fast``)."""
        self.fast_frames = 0
        """Frames ``FastFrames`` checked (in this process or a child)."""
        self.split_min: int | None = None
        """``fast``: check the second half of the frames in a child process when they
        decompress to at least this many bytes (``framesplit.py``); None: never."""
        self.split_at: int | None = None
        """The child's first frame (None: where half the bytes are; tests set it)."""
        self.child_frames = 0
        """Frames a child process checked (counted in ``fast_frames`` too)."""

    @property
    def frame_size(self) -> int:
        """Bytes of zstd frames read so far."""
        if self.header is not None and self.header.version >= 2:
            return self.compressed
        return self.frame.pos - self.frame.start if self.frame else 0

    def _error(self, d: _Damage) -> CassetteError:
        return d.cls(d.message, offset=d.offset, events_read=self.decoder.events,
                     path=self.path)

    def events(self) -> Iterator[Event]:
        """Yield every complete event; raise the CassetteError at the damage."""
        with open(self.path, "rb") as f:
            self.file_size = os.fstat(f.fileno()).st_size
            self.decoder.budget = self.limits.decoded_budget(self.file_size)
            try:
                yield from self._events(f)
            except _Damage as d:
                yield from d.got  # every complete event before the damage
                if self.header is None or self.header.version >= 2:
                    d = _recheck2(f, self.file_size, d, self.limits)
                if self.header is None or self.header.version == 1:
                    d = _recheck(f, self.file_size, self.frame_start, d)
                raise self._error(d) from None

    def _events(self, f: IO[bytes]) -> Iterator[Event]:
        self.header, hsize = _read_header(f, self.limits)
        self.frame_start = hsize
        if self.header.version == 1:
            self.frame = frame = _Frame(f, hsize, self.limits)
            yield from self._frame_events(frame)
            self._finish(frame)
            return
        tag = f.read(4)
        if tag == JOURNAL_TAG:
            yield from self._journal_events(f, hsize + 4)
        elif tag == PACK_TAG:
            yield from self._packed_events(f, hsize + 4)
        elif PACK_TAG.startswith(tag) or JOURNAL_TAG.startswith(tag):
            raise _Damage(CassetteTruncatedError, "file ends inside the body tag",
                          self.file_size)
        else:
            raise _Damage(CassetteCorruptError, f"unknown body tag {tag!r}", hsize)

    def _frame_events(self, frame: _Frame) -> Iterator[Event]:
        """Decode one zstd frame's records, yielding its events."""
        dctx = zstandard.ZstdDecompressor(max_window_size=self.limits.max_window_size)
        # Duck-typed source: the decoder only calls read().
        reader = dctx.stream_reader(cast("IO[bytes]", frame), read_size=_UNIT_MAX,
                                    read_across_frames=False)
        while True:
            try:
                out = reader.read1(_BLOCK_MAX)
            except zstandard.ZstdError as exc:
                raise _Damage(CassetteCorruptError, str(exc), frame.pos) from None
            if not out:
                break
            self.raw_size += len(out)
            yield from self.feed(out, frame.pos)

    def _journal_events(self, f: IO[bytes], start: int) -> Iterator[Event]:
        """A version 2 journal: uncompressed records to the end of the file, or to a
        framing of 8 zero bytes (docs/cassette-format.md, "The zero tail")."""
        dec = self.decoder
        dec.index_records = True
        try:
            while chunk := f.read(_CHUNK):
                self.raw_size += len(chunk)
                yield from self.feed(chunk, None)
        except _Damage as d:
            if d.cls is not CassetteCorruptError or not _zero_framing(f, d.offset):
                raise
            yield from d.got
            if dec.end is None:
                raise _Damage(CassetteTruncatedError, "records end at a zero framing, before "
                              "the end record (the recording did not finish)",
                              d.offset) from None
            if not _zeros_to_end(f, d.offset):
                raise _Damage(CassetteCorruptError, "bytes after the end record",
                              d.offset) from None
            self._check_end(d.offset)
            return
        size = self.file_size
        if dec.end is None:
            what = "inside a record" if dec.pending else \
                "before the end record (the recording did not finish)"
            raise _Damage(CassetteTruncatedError, f"file ends {what}", size)
        if dec.pending:
            raise _Damage(CassetteCorruptError, "bytes after the end record", start + dec.done)
        self._check_end(start + dec.done)

    def _check_end(self, at: int) -> None:
        end, dec = self.decoder.end, self.decoder
        assert end is not None
        if (end.events, end.blobs) != (dec.events, len(dec.blobs)):
            raise _Damage(CassetteCorruptError, f"end record counts {end.events} events and "
                          f"{end.blobs} blobs; the file holds {dec.events} and "
                          f"{len(dec.blobs)}", at)

    def _packed_events(self, f: IO[bytes], start: int) -> Iterator[Event]:
        """A packed version 2 body: data frames to the ``end`` record, index, trailer.

        With ``fast``, and a trailer and index that check out, each frame the index
        names is checked by :class:`FastFrames`; any frame it does not vouch for is
        read here as always, which finds and places the damage.
        """
        from replay._cassette import framecheck, framesplit, indexread

        child = framesplit.spawn(self.file_size, self.split_min) if self.fast else None
        got = split = None
        try:
            got = indexread.intact_index(f, start, self.file_size, self.limits) \
                if self.fast else None
            split = None if got is None else framesplit.start(
                self.path, got[0], got[1], self.limits, self.decoder.budget, self.split_min,
                self.split_at, child)
        finally:
            if child is not None and (got is None or split is None):
                child.close()
        if got is None:
            yield from self._packed_frames(f, start, None, None)
            return
        scan, self.index_at = got
        with open(self.path, "rb") as again:
            rows = indexread.Rows(iter(IndexRecords(again, self.index_at, self.file_size,
                                                     self.limits)), scan)
            fast = framecheck.FastFrames(self.path, scan, self.decoder, self.limits, rows)
            fast.split = split
            fast.stop = split.first if split is not None else fast.stop
            try:
                yield from self._packed_frames(f, start, fast, rows)
            finally:
                fast.close()
                self.fast_frames += fast.taken

    def _packed_frames(self, f: IO[bytes], start: int, fast: FastFrames | None,
                       rows: Rows | None) -> Iterator[Event]:
        pos, frames, k = start, [], 0
        table = fast.scan.frames if fast is not None else None
        dec = self.decoder
        while dec.end is None:
            if fast is not None and fast.split is not None and k == fast.split.first:
                was = (dec.events, dec.done, pos)
                took = fast.adopt()  # the frames a child process checked (framesplit.py)
                frames += took
                k, pos = k + len(took), took[-1][0] + took[-1][1] if took else pos
                self.compressed, self.raw_size = self.compressed + pos - was[2], \
                    self.raw_size + dec.done - was[1]
                self.events_checked += dec.events - was[0]
                self.fast_frames, self.child_frames = self.fast_frames + len(took), len(took)
                continue
            if fast is not None and table is not None and k < len(table["off"]) \
                    and table["off"][k] == pos and fast.frame(k):
                ln = table["len"][k]
                self.raw_size += table["rawlen"][k]
            else:
                f.seek(pos)
                self.frame = frame = _Frame(f, pos, self.limits)
                for ev in self._frame_events(frame):
                    if rows is not None:
                        rows.add_event(ev)
                    yield ev
                if frame.truncated:
                    what = ("inside a record" if dec.pending else
                            "before the end record (the recording did not finish)")
                    raise _Damage(CassetteTruncatedError, f"file ends {what}", self.file_size)
                if not frame.done:
                    raise _Damage(CassetteCorruptError, "zstd frame ends before its last block",
                                  frame.pos)
                if dec.pending:
                    raise _Damage(CassetteCorruptError, "zstd frame ends inside a record",
                                  frame.pos)
                ln = frame.pos - pos
                if table is not None and k < len(table["off"]) and table["off"][k] == pos \
                        and table["len"][k] == ln and table["crc"][k] != frame.crc:
                    raise _Damage(CassetteCorruptError, "frame checksum mismatch (index)", pos)
            if rows is not None:  # the rows are compared frame by frame: keep no offsets
                rows.check(dec.event_pos)
                self.events_checked += len(dec.event_pos)
                del dec.event_pos[:]
            frames.append((pos, ln, dec.done))
            self.compressed += ln
            pos += ln
            k += 1
        self._check_end(pos)
        if fast is None or rows is None:
            f.seek(pos)
            index = read_index(f, pos, self.file_size, self.limits)
            check_index(index, frames, dec, start, pos)
            return
        why = fast.mismatch(frames, pos, self.index_at)
        if why:
            raise _Damage(CassetteCorruptError, f"bad index: {why}", pos)

    def feed(self, data: bytes, at: int | None) -> list[Event]:
        """Decode the records ``data`` completes; ``at`` is the file offset for errors
        (None: a journal's, where the bad record starts)."""
        got: list[Event] = []
        try:
            self.decoder.feed(data, got)
        except (OverLimitError, ValueError) as exc:
            cls = CassetteLimitError if isinstance(exc, OverLimitError) else CassetteCorruptError
            where = at if at is not None else (self.frame_start or 0) + 4 + self.decoder.done
            raise _Damage(cls, str(exc), where, got) from None
        return got

    def _finish(self, frame: _Frame) -> None:
        """Classify how the frame ended and check the trailer."""
        size, end = self.file_size, self.decoder.end
        if frame.truncated:
            what = ("inside a record" if self.decoder.pending else
                    "after the end record, before the frame's end" if end else
                    "before the end record (the recording did not finish)")
            raise _Damage(CassetteTruncatedError, f"file ends {what}", size)
        if not frame.done:
            raise _Damage(CassetteCorruptError, "zstd frame ends before its last block", frame.pos)
        if self.decoder.pending:
            raise _Damage(CassetteCorruptError, "zstd frame ends inside a record", frame.pos)
        if end is None:
            raise _Damage(CassetteCorruptError, "zstd frame ends without an end record", frame.pos)
        dec = self.decoder
        if (end.events, end.blobs) != (dec.events, len(dec.blobs)):
            raise _Damage(CassetteCorruptError, f"end record counts {end.events} events and "
                          f"{end.blobs} blobs; the file holds {dec.events} and "
                          f"{len(dec.blobs)}", frame.pos)
        at = frame.pos
        expect = _TRAILER.pack(TRAILER_MAGIC, at - frame.start, frame.crc)
        got = frame.rest(_TRAILER.size + 1)
        if got[:_TRAILER.size] == expect:
            if len(got) > _TRAILER.size:
                raise _Damage(CassetteCorruptError, "bytes after the trailer", at + _TRAILER.size)
            return
        if len(got) < _TRAILER.size and expect.startswith(got):
            raise _Damage(CassetteTruncatedError, "file ends inside the trailer", size)
        if got[:4] != TRAILER_MAGIC:
            raise _Damage(CassetteCorruptError, "bad trailer magic", at)
        if got[4:12] != expect[4:12]:
            raise _Damage(CassetteCorruptError, "trailer frame length mismatch", at + 4)
        raise _Damage(CassetteCorruptError, "frame checksum mismatch (trailer)", at + 12)


def _recheck2(f: IO[bytes], size: int, d: _Damage, limits: Limits) -> _Damage:
    """Version 2's :func:`_recheck`: a file that ends in a trailer fitting its index was
    written to the end, so it is not truncated; and a limit is genuine only when the
    index and every frame pass their checksums."""
    if d.cls is not CassetteTruncatedError and d.cls is not CassetteLimitError:
        return d
    if size < _TRAILER2.size:
        return d
    f.seek(size - _TRAILER2.size)
    magic, at, length, _ = _TRAILER2.unpack(f.read(_TRAILER2.size))
    if magic != TRAILER2_MAGIC or at + length + _TRAILER2.size != size:
        return d
    if d.cls is CassetteTruncatedError:
        return _Damage(CassetteCorruptError, f"{d.message}, yet the file has a trailer", d.offset)
    try:
        index = read_index(f, at, size, Limits())  # checksums, not the caller's limits
        f_ = index.frames
        f.seek(10)
        n = _U32.unpack(f.read(4))[0]
        if not len(f_["off"]) or f_["off"][0] != _HEAD.size + n + 4 + 4:
            raise _Damage(CassetteCorruptError, "", 10)  # the header's length is wrong
        for off, ln, crc in zip(f_["off"], f_["len"], f_["crc"], strict=True):
            f.seek(off)
            if crc32c.crc32c(f.read(ln)) != crc:
                raise _Damage(CassetteCorruptError, "", off)
    except _Damage:
        return _Damage(CassetteCorruptError, f"{d.message}, and the file fails its "
                       "checksums", d.offset)
    return d


def read_header(path: PathArg, *, limits: Limits | None = None) -> Header:
    """Read only the header (cheap; works on a ``.partial`` too)."""
    with open(path, "rb") as f:
        try:
            return _read_header(f, limits or Limits())[0]
        except _Damage as d:
            size = os.fstat(f.fileno()).st_size
            d = _recheck(f, size, None, _recheck2(f, size, d, limits or Limits()))
            raise d.cls(d.message, offset=d.offset, path=os.fspath(path)) from None


def _indexed(path: PathArg, limits: Limits, *, check_frames: bool,
             columns: Iterable[str] | None = None) -> EventLog | None:
    """The events of a packed version 2 file through its index, else None (read it
    sequentially, which finds and classifies any damage)."""
    try:
        return open_packed(os.fspath(path), limits, check_frames=check_frames,
                           columns=columns)
    except (NotPacked, _Damage, OSError):
        return None


def iter_events(path: PathArg, *, limits: Limits | None = None) -> Iterator[Event]:
    """Yield a cassette's events in file order, streaming.

    Raises the CassetteError at the damage after yielding every complete event
    before it; events yielded are always exactly as written.
    """
    limits = limits or Limits()
    log = _indexed(path, limits, check_frames=False, columns=())  # seq and pos: 16 B an event
    if log is not None:
        return iter(log)
    return _Reader(path, limits).events()


def open_events(path: PathArg, *, limits: Limits | None = None,
                columns: Iterable[str] | None = None) -> Cassette | None:
    """A packed version 2 cassette with its events decoded on demand (``EventLog``),
    or None for any other file (version 1, a journal, a damaged file).

    ``columns``: the index columns its ``EventLog`` answers besides ``seq`` (None:
    all of them); ``()`` holds 16 bytes an event for a reader that decodes the
    events it uses (``replay show``), where all columns take 49.
    """
    limits = limits or Limits()
    log = _indexed(path, limits, check_frames=False, columns=columns)
    if log is None:
        return None
    return Cassette(log.path, log.header, log)


def read_cassette(path: PathArg, *, strict: bool = True,
                  limits: Limits | None = None, check_frames: bool = True) -> Cassette:
    """Read a whole cassette.

    ``strict=True`` raises on any damage; ``strict=False`` returns the events
    before it with ``damage`` set (a header that cannot be read still raises:
    there is nothing to return).

    A packed cassette's events are decoded on demand (``EventLog``); its frames'
    checksums are checked at open, a pass over the whole file. ``check_frames=False``
    leaves that pass out (each frame is still checked when an event in it is
    decoded, and ``EventLog.check_frames()`` does the pass later): a damaged frame
    then surfaces as a CassetteError when one of its events is read.
    """
    limits = limits or Limits()
    log = _indexed(path, limits, check_frames=check_frames)
    if log is not None:
        return Cassette(log.path, log.header, log)
    reader = _Reader(path, limits, keep_events=True)
    events: list[Event] = []
    damage: CassetteError | None = None
    # Decoding makes no reference cycles, so pausing the cycle collector loses
    # nothing and saves its repeated scans of the growing event list (~35%).
    paused = gc.isenabled()
    gc.disable()
    try:
        events.extend(reader.events())
    except CassetteError as exc:
        if strict or reader.header is None:
            raise
        damage = exc
    finally:
        if paused:
            gc.enable()
    assert reader.header is not None
    return Cassette(reader.path, reader.header, tuple(events), damage)


def verify(path: PathArg, *, limits: Limits | None = None) -> VerifyReport:
    """Read the whole file and report its state (never raises CassetteError).

    Every record is decoded and checked, but no str or bytes blob is kept: no
    payload is needed to tell whether the file is intact.
    """
    from replay._cassette.framesplit import SPLIT_MIN_RAW

    reader = _Reader(path, limits or Limits(), keep_blob_values=False, fast=True)
    reader.split_min = SPLIT_MIN_RAW
    status: Status = "complete"
    offset: int | None = None
    message = ""
    try:
        collections.deque(reader.events(), maxlen=0)  # holding none of them
    except CassetteError as exc:
        status, offset, message = exc.kind, exc.offset, exc.reason  # type: ignore[assignment]
    return VerifyReport(
        path=reader.path, status=status, events_read=reader.decoder.events, offset=offset,
        message=message, file_size=reader.file_size, blob_count=len(reader.decoder.blobs),
        compressed_size=reader.frame_size, raw_size=reader.raw_size,
        version=reader.header.version if reader.header else None)
