"""Reading a packed version 2 cassette through its index: seek, decode on demand.

:func:`open_packed` checks the trailer, reads and checks the index (and, for
``read_cassette``, every frame's CRC32C) and returns an :class:`EventLog`: a
sequence of the events that decodes a frame and an event only when asked,
and answers the summary columns (seq, channel, task, times, flags, parent)
without decoding anything. Memory: the index (~49 bytes an event) and small
bounded caches of frames, blobs and events.
"""

from __future__ import annotations

import bisect
import itertools
import operator
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, overload

import crc32c

from replay._cassette import index as ix
from replay._cassette.codec import _FRAMING
from replay._cassette.decoder import (
    DecodeError,
    reason,
)
from replay._cassette.errors import (
    CassetteCorruptError,
    CassetteLimitError,
)
from replay._cassette.events import Event
from replay._cassette.indexread import read_index
from replay._cassette.layout import (
    _TRAILER2,
    FRAME_RAW,
    PACK_TAG,
    TRAILER2_MAGIC,
    Header,
    Limits,
)
from replay._cassette.ondemand import _Packed
from replay._cassette.sections import _Damage, _read_header

_EVENTS_CACHED = 512


class NotPacked(Exception):
    """The file is not a packed version 2 cassette (read it sequentially)."""


def open_packed(path: str, limits: Limits, *, check_frames: bool,
                columns: Iterable[str] | None = None) -> EventLog:
    """The events of the packed cassette at ``path``; raise NotPacked or _Damage.
    ``columns``: the index columns to hold besides seq and pos (None: all; the
    accessors of the others raise KeyError)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        header, hsize = _read_header(f, limits)
        if header.version < 2 or f.read(4) != PACK_TAG or size < hsize + 4 + _TRAILER2.size:
            raise NotPacked
        f.seek(size - _TRAILER2.size)
        magic, at, length, _ = _TRAILER2.unpack(f.read(_TRAILER2.size))
        if magic != TRAILER2_MAGIC or at + length + _TRAILER2.size != size or at < hsize + 4:
            raise NotPacked  # no trailer that fits: let the sequential reader say why
        index = read_index(f, at, size, limits, columns)
        try:
            index.check(hsize + 4, at)
        except ValueError as exc:
            raise _Damage(CassetteCorruptError, f"bad index: {exc}", at) from None
        frames = index.frames
        limit = limits.max_record_size + 2 * FRAME_RAW
        for off, rl in zip(frames["off"], frames["rawlen"], strict=True):
            if rl > limit:
                raise _Damage(CassetteLimitError, f"frame of {rl} bytes decoded, over the "
                              f"{limit} limit", off)
            if rl > limits.max_window_size:  # a one-shot frame's window is its content
                raise _Damage(CassetteLimitError, f"zstd window of {rl} bytes, over the "
                              f"{limits.max_window_size} limit", off)
        if check_frames:
            _check_frames(f, index)
    return EventLog(_Packed(path, header, index, limits, size))


def _check_frames(f: IO[bytes], index: ix.Index) -> None:
    """Every data frame's CRC32C against the index; raise _Damage at the first bad one."""
    frames = index.frames
    for off, ln, crc in zip(frames["off"], frames["len"], frames["crc"], strict=True):
        f.seek(off)
        if crc32c.crc32c(f.read(ln)) != crc:
            raise _Damage(CassetteCorruptError, "frame checksum mismatch (index)", off)


# -- decoding on demand ----------------------------------------------------------

class EventLog(Sequence[Event]):
    """The events of a packed cassette, decoded when asked for (in file order).

    Indexing or iterating decodes events (a bounded cache keeps recent ones);
    :meth:`seq`, :meth:`channel`, :meth:`task`, :meth:`start_ns`,
    :meth:`duration_ns`, :meth:`parent` and :meth:`flags` read the index only.
    Damage found while decoding raises :class:`~replay.CassetteError`.
    """

    RAISED = ix.FLAG_ERROR
    """Flag bit: the call raised."""
    HTTP_ERROR = ix.FLAG_HTTP_ERROR
    """Flag bit: an ``http`` event answered with a status of 400 or more."""
    STREAMED = ix.FLAG_CHUNKS
    """Flag bit: a streamed response (``chunks``)."""
    RETURNED = ix.FLAG_RESPONSE
    """Flag bit: the call returned a value."""

    def __init__(self, packed: _Packed,
                 transform: Callable[[Event], Event] | None = None) -> None:
        self._p = packed
        self._cols = packed.index.cols
        self._transform = transform
        self._cache: dict[int, Event] = {}

    @property
    def path(self) -> str:
        """The cassette file."""
        return self._p.path

    @property
    def header(self) -> Header:
        """The cassette's header."""
        return self._p.header

    def __len__(self) -> int:
        return len(self._cols["seq"])

    @overload
    def __getitem__(self, i: int) -> Event: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Event]: ...

    def __getitem__(self, i: int | slice) -> Event | Sequence[Event]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("event index out of range")
        ev = self._cache.get(i)
        if ev is None:
            ev = self._decode(i)
            if len(self._cache) >= _EVENTS_CACHED:
                del self._cache[next(iter(self._cache))]
            self._cache[i] = ev
        return ev

    def __iter__(self) -> Iterator[Event]:
        """Every event in file order, each record decoded once: the frames are read one
        after the other, and each blob as it comes, before the events that use it (so
        their references are cache hits, not nested reads).

        The usual record is taken by ``_Packed.fast_event`` (framing here, then one
        msgspec decode into a typed struct, the event built from it); anything
        unusual or wrong (a limit, a nested blob read that fails, a bad field) is
        decoded again by :meth:`_decode`, which raises the documented error with its
        offset.
        """
        p = self._p
        pos, bpos, seqs = self._cols["pos"], p.index.bpos, self._cols["seq"]
        n, nb = len(pos), len(bpos)
        starts, offs = p.raw_starts, p.index.frames["off"]
        blobs, cache, transform = p.blobs, self._cache, self._transform
        framing, fast = _FRAMING.unpack_from, p.fast_event
        max_values = p.limits.max_record_values
        e = b = k = 0
        data, base, off, size = b"", 0, 0, 0
        end = -1  # stream offset where the frame in ``data`` ends
        while e < n:
            blob = b < nb and bpos[b] < pos[e]
            at = bpos[b] if blob else pos[e]
            if at >= end:
                k = bisect.bisect_right(starts, at) - 1
                try:
                    data = p.frame(k)
                except _Damage as d:
                    raise d.cls(d.message, offset=d.offset, events_read=e,
                                path=p.path) from None
                base, off, size = starts[k], offs[k], len(data)
                end = base + size
            i = at - base
            stop = length = 0  # stop > 0: a record that fits in its frame, within limits
            if i + 8 <= size:  # (the frame's CRC32C covers the record's: see decode_at)
                length = framing(data, i)[0]
                if 0 < length <= max_values and i + 8 + length <= size:
                    stop = i + 8 + length
            if blob:
                if b not in blobs and not (stop and p.bin_blob(data, i + 8, stop, b)):
                    try:
                        m, used = p.decode_at(data, i, at, off)
                        p.keep_blob(b, m, used)
                    except DecodeError as exc:
                        raise CassetteCorruptError(str(exc), offset=off, events_read=e,
                                                   path=p.path) from None
                    except _Damage as d:
                        raise d.cls(d.message, offset=d.offset, events_read=e,
                                    path=p.path) from None
                b += 1
                continue
            ev = cache.get(e)
            if ev is None and stop:
                ev = fast(data, i + 8, stop, at)
                if ev is not None:
                    if ev.seq != seqs[e]:
                        ev = None
                    elif transform is not None:
                        ev = transform(ev)
            if ev is None:
                ev = self._decode(e, (data, i, off))
            yield ev
            e += 1

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same events (a tuple of them, say)."""
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other,
                                                                       strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<EventLog of {len(self)} events from {self.path!r}>"

    def _decode(self, i: int, where: tuple[bytes, int, int] | None = None) -> Event:
        """Event ``i``; ``where`` is (its frame's data, its offset in it, the frame's file
        offset) when the caller has the frame at hand."""
        p = self._p
        try:
            at = self._cols["pos"][i]
            if where is None:
                k = bisect.bisect_right(p.raw_starts, at) - 1
                where = (p.frame(k), at - p.raw_starts[k], p.index.frames["off"][k])
            data, j, _ = where
            if j + 8 <= len(data):  # the fast path first, as __iter__ takes it: the same event
                length = _FRAMING.unpack_from(data, j)[0]
                if 0 < length <= p.limits.max_record_values and j + 8 + length <= len(data):
                    ev = p.fast_event(data, j + 8, j + 8 + length, at)
                    if ev is not None and ev.seq == self._cols["seq"][i]:
                        return ev if self._transform is None else self._transform(ev)
            m, _ = p.decode_at(data, j, at, where[2])
            if m.get("k") != "ev":
                raise _Damage(CassetteCorruptError, "index points at no event", p.path_offset(i))
            try:
                ev = Event.from_map(m)
            except ValueError as exc:
                raise _Damage(CassetteCorruptError, f"bad record: {reason(exc)}",
                              p.path_offset(i)) from None
            if ev.seq != self._cols["seq"][i]:
                raise _Damage(CassetteCorruptError, "index disagrees with the event's seq",
                              p.path_offset(i))
        except _Damage as d:
            raise d.cls(d.message, offset=d.offset, events_read=i, path=p.path) from None
        return ev if self._transform is None else self._transform(ev)

    def check_frames(self) -> None:
        """Check every frame's CRC32C against the index, as ``read_cassette`` does when
        it opens the file (one pass over it); raise CassetteCorruptError at the first
        frame that fails. For a log opened with ``check_frames=False``."""
        p = self._p
        try:
            with open(p.path, "rb") as f:
                _check_frames(f, p.index)
        except _Damage as d:
            raise d.cls(d.message, offset=d.offset, path=p.path) from None

    def map(self, transform: Callable[[Event], Event]) -> EventLog:
        """A view of the same events with ``transform`` applied to each as it is decoded."""
        prior = self._transform
        fn = transform if prior is None else (lambda ev: transform(prior(ev)))
        return EventLog(self._p, fn)

    # --- the index -----------------------------------------------------------------

    def seq(self, i: int) -> int:
        """``seq`` of event ``i``, from the index."""
        return self._cols["seq"][i]

    def channel(self, i: int) -> str:
        """``channel`` of event ``i``, from the index."""
        return self._p.index.channels[self._cols["chan"][i]]

    def task(self, i: int) -> str:
        """``task`` of event ``i``, from the index."""
        return self._p.index.tasks[self._cols["task"][i]]

    def start_ns(self, i: int) -> int:
        """``start_ns`` of event ``i``, from the index."""
        return self._cols["start"][i]

    def duration_ns(self, i: int) -> int:
        """``duration_ns`` of event ``i``, from the index."""
        return self._cols["dur"][i]

    def parent(self, i: int) -> int | None:
        """``parent`` of event ``i`` (None when it has none), from the index."""
        p = self._cols["parent"][i]
        return None if p == ix.NO_PARENT else p

    def flags(self, i: int) -> int:
        """Flag bits of event ``i``: 1 raised, 2 HTTP status >= 400, 4 streamed,
        8 returned a value (docs/cassette-format.md, "Index records")."""
        return self._cols["flags"][i]

    def seqs(self) -> Sequence[int]:
        """The ``seq`` column (file order)."""
        return self._cols["seq"]

    def channel_ids(self) -> tuple[Sequence[int], Sequence[str]]:
        """(channel id of each event, the channel names by id)."""
        return self._cols["chan"], self._p.index.channels

    def flag_column(self) -> Sequence[int]:
        """The ``flags`` column (file order)."""
        return self._cols["flags"]

    def start_column(self) -> Sequence[int]:
        """The ``start_ns`` column (file order)."""
        return self._cols["start"]

    def parent_column(self) -> Sequence[int]:
        """The ``parent`` column (file order; -1 for none)."""
        return self._cols["parent"]

    def seq_order(self) -> Sequence[int]:
        """Event indexes in ``seq`` order (a range when the file is already in it)."""
        s = self._cols["seq"]
        if all(map(operator.le, s, itertools.islice(s, 1, None))):  # the loop runs in C
            return range(len(s))
        return sorted(range(len(s)), key=s.__getitem__)

    def flagged(self, mask: int) -> list[int]:
        """Indexes (file order) of the events whose flag bits share one with ``mask``
        (``EventLog.RAISED | EventLog.HTTP_ERROR``: the errors), from the index at C
        speed: no per-event Python work when few match."""
        hit = bytes(1 if b & mask else 0 for b in range(256))
        marks = self._cols["flags"].tobytes().translate(hit)
        out, i = [], marks.find(1)
        while i >= 0:
            out.append(i)
            i = marks.find(1, i + 1)
        return out

