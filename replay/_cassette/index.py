"""The event index of a version 2 cassette: summary columns, one row per event.

The writer gathers a batch of rows per :data:`BATCH` events and writes it as
one ``ix`` record; a packed cassette gathers them again in its index section
beside the ``frames`` table, so a reader finds any event (and its seq,
channel, task, times, flags and parent) without decoding the others. Columns
are little-endian arrays stored as msgpack ``bin``; see "Index records" in
docs/cassette-format.md.
"""

from __future__ import annotations

import array
import itertools
import operator
import struct
import sys
from collections.abc import Iterable, Iterator
from typing import Any, Final

import msgpack

from replay._cassette.events import Event

BATCH: Final = 4096
"""Events per ``ix`` record."""

FLAG_ERROR: Final = 1
"""The call raised (``Event.error`` is set)."""
FLAG_HTTP_ERROR: Final = 2
"""An ``http`` event whose response status is 400 or more."""
FLAG_CHUNKS: Final = 4
"""A streamed response (``Event.chunks`` is not empty)."""
FLAG_RESPONSE: Final = 8
"""The call returned a value (``Event.response`` is not None)."""

NO_PARENT: Final = -1
"""The ``parent`` column's value for an event with no parent."""

# column name -> array typecode (all 8, 4 or 1 bytes wide, little-endian on disk)
EVENT_COLUMNS: Final = {"seq": "q", "pos": "Q", "start": "q", "dur": "q", "parent": "q",
                        "chan": "I", "task": "I", "flags": "B"}
FRAME_COLUMNS: Final = {"off": "Q", "len": "Q", "crc": "I", "raw": "Q", "rawlen": "Q"}

for _code in "qQIB":
    assert array.array(_code).itemsize in (1, 4, 8), "unusual C integer widths"
_ITEMSIZE: Final = {c: array.array(c).itemsize for c in "qQIB"}


def flags_of(event: Event) -> int:
    """The ``flags`` column for ``event``."""
    f = 0
    if event.error is not None:
        f |= FLAG_ERROR
    res = event.response
    if res is not None:
        f |= FLAG_RESPONSE
        if event.channel == "http" and type(res) is dict:
            status = res.get("status")
            if type(status) is int and status >= 400:
                f |= FLAG_HTTP_ERROR
    if event.chunks:
        f |= FLAG_CHUNKS
    return f


def to_bin(a: array.array[int]) -> bytes:
    """An array's bytes, little-endian."""
    if sys.byteorder == "big" and a.itemsize > 1:
        a = array.array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def from_bin(code: str, data: Any, n: int, what: str) -> array.array[int]:
    """An array of ``n`` items of ``code`` from little-endian ``data``; ValueError if it is not."""
    a = array.array(code)
    if type(data) is not bytes or len(data) != n * a.itemsize:
        raise ValueError(f"index column {what!r} is not {n} items")
    a.frombytes(data)
    if sys.byteorder == "big" and a.itemsize > 1:
        a.byteswap()
    return a


_ROW: Final = struct.Struct("=8q")
"""One row in :class:`Batch`'s buffer: the :data:`EVENT_COLUMNS` in order, native i64."""
ROW: Final = _ROW
"""A whole row, for a writer that appends rows to :attr:`Batch.rows` itself."""
ROW_TAIL: Final = struct.Struct("=4q")
"""The last four fields of a row (``parent``, ``chan``, ``task``, ``flags``): a writer
may append ``ROW_HEAD`` + ``ROW_TAIL`` bytes to :attr:`Batch.rows` itself."""
ROW_HEAD: Final = struct.Struct("=4q")
"""The first four fields of a row (``seq``, ``pos``, ``start``, ``dur``)."""
_WIDTH: Final = len(EVENT_COLUMNS)


def _narrowed(col: array.array[int], code: str) -> bytes:
    """The column ``col`` (an ``q`` array) as ``code``'s little-endian bytes, without an
    int object per item: an ``I`` or ``B`` item is the low bytes of its ``q`` one (the
    ids and flags fit), a ``Q`` item (an offset, never negative) all of them."""
    if code in "qQ":
        return to_bin(col)
    if sys.byteorder != "little":
        return to_bin(array.array(code, col))
    raw = memoryview(col).cast("B")
    narrow = raw.cast("I")[::2] if code == "I" else raw[::8]
    return narrow.tobytes()


class Batch:
    """The writer's rows since the last ``ix`` record (and the names it has handed out).

    Rows are kept interleaved in one array (a row is one C call to add, not eight)
    and split into the columns by :meth:`record`.
    """

    def __init__(self) -> None:
        self.first = 0
        """Index (file order) of the batch's first event."""
        self.rows = array.array("q")
        """The rows so far, :data:`EVENT_COLUMNS` interleaved; the same array for the
        writer's life (:meth:`record` empties it), so its methods may be bound once."""
        self.bfirst = 0
        """Id of the batch's first new blob."""
        self.bpos = array.array("Q")
        self._chans: dict[str, int] = {}
        self._tasks: dict[str, int] = {}
        self._new_chans: list[str] = []
        self._new_tasks: list[str] = []

    def __len__(self) -> int:
        return len(self.rows) // _WIDTH

    def _id(self, table: dict[str, int], new: list[str], name: str) -> int:
        i = table.get(name)
        if i is None:
            i = table[name] = len(table)
            new.append(name)
        return i

    def add(self, event: Event, pos: int) -> None:
        """One row: ``event`` written at stream offset ``pos``."""
        self.add_row(event.seq, pos, event.start_ns, event.duration_ns,
                     NO_PARENT if event.parent is None else event.parent,
                     self.channel_id(event.channel), self.task_id(event.task), flags_of(event))

    def channel_id(self, name: str) -> int:
        """The ``chan`` column's number for channel ``name`` (the same for the whole file)."""
        return self._id(self._chans, self._new_chans, name)

    def task_id(self, name: str) -> int:
        """The ``task`` column's number for task ``name`` (the same for the whole file)."""
        return self._id(self._tasks, self._new_tasks, name)

    def add_row(self, seq: int, pos: int, start: int, dur: int, parent: int, chan: int,
                task: int, flags: int) -> int:
        """One row from its columns' values (``chan``, ``task``: from ``channel_id``,
        ``task_id``); returns the batch's length."""
        self.rows.frombytes(_ROW.pack(seq, pos, start, dur, parent, chan, task, flags))
        return len(self.rows) // _WIDTH

    def record(self) -> dict[str, Any]:
        """The ``ix`` record map for the rows so far; then start the next batch."""
        rows = self.rows
        m: dict[str, Any] = {"k": "ix", "first": self.first, "n": len(self),
                             "bfirst": self.bfirst, "nb": len(self.bpos),
                             "chans": self._new_chans, "tasks": self._new_tasks}
        for k, (name, code) in enumerate(EVENT_COLUMNS.items()):
            m[name] = _narrowed(rows[k::_WIDTH], code)
        m["bpos"] = to_bin(self.bpos)
        self.first += len(self)
        self.bfirst += len(self.bpos)
        del rows[:]
        self.bpos = array.array("Q")
        self._new_chans, self._new_tasks = [], []
        return m


def shift(m: dict[str, Any], by: int) -> dict[str, Any]:
    """An ``ix`` record map with its stream offsets moved back by ``by`` bytes."""
    out = dict(m)
    for key, n in (("pos", m["n"]), ("bpos", m["nb"])):
        a = from_bin("Q", m[key], n, key)
        out[key] = to_bin(array.array("Q", (p - by for p in a)))
    return out


def pack(m: dict[str, Any]) -> bytes:
    """An index record's payload."""
    return msgpack.packb(m)


REQUIRED_COLUMNS: Final = ("seq", "pos")
"""The columns every :class:`Index` holds (an event is found and checked by them)."""


class Index:
    """Every event's summary row and the frame table of a packed cassette, in memory.

    About 49 bytes per event (the columns), whatever the payloads weigh, plus 8 per
    blob. ``columns``: hold only these event columns besides ``seq`` and ``pos``
    (``replay show`` decodes every event it prints and needs no other: 16 bytes an
    event); every column of every record is still checked for its length.
    """

    def __init__(self, columns: Iterable[str] | None = None) -> None:
        keep = set(EVENT_COLUMNS if columns is None else (*REQUIRED_COLUMNS, *columns))
        if not keep <= EVENT_COLUMNS.keys():
            raise ValueError(f"no index columns {sorted(keep - EVENT_COLUMNS.keys())}")
        self.cols = {k: array.array(c) for k, c in EVENT_COLUMNS.items() if k in keep}
        self.bpos = array.array("Q")
        self.frames = {k: array.array(c) for k, c in FRAME_COLUMNS.items()}
        self.channels: list[str] = []
        self.tasks: list[str] = []

    def __len__(self) -> int:
        return len(self.cols["seq"])

    def add_ix(self, m: Any) -> None:
        """Append one decoded ``ix`` record; ValueError when it does not fit."""
        if type(m) is not dict:
            raise ValueError("index record is not a map")
        n, nb = m.get("n"), m.get("nb")
        if type(n) is not int or type(nb) is not int or n < 0 or nb < 0:
            raise ValueError("index record counts are malformed")
        if m.get("first") != len(self) or m.get("bfirst") != len(self.bpos):
            raise ValueError(f"index record starts at event {m.get('first')!r}, blob "
                             f"{m.get('bfirst')!r}; expected {len(self)}, {len(self.bpos)}")
        for key, table in (("chans", self.channels), ("tasks", self.tasks)):
            names = m.get(key)
            if type(names) is not list or not all(type(s) is str for s in names):
                raise ValueError(f"index record {key!r} is not a list of str")
            table.extend(names)
        for k, c in EVENT_COLUMNS.items():  # held or not, each column has n items
            data = m.get(k)
            if type(data) is not bytes or len(data) != n * _ITEMSIZE[c]:
                raise ValueError(f"index column {k!r} is not {n} items")
        cols = {k: from_bin(EVENT_COLUMNS[k], m[k], n, k) for k in self.cols}
        for k, names in (("chan", self.channels), ("task", self.tasks)):
            if n and k in cols and max(cols[k]) >= len(names):
                raise ValueError("index record names an unknown channel or task")
        for k, a in cols.items():
            self.cols[k].extend(a)
        self.bpos.extend(from_bin("Q", m.get("bpos"), nb, "bpos"))

    def set_frames(self, m: Any) -> None:
        """The decoded ``frames`` record; ValueError when malformed."""
        if type(m) is not dict or type(m.get("n")) is not int:
            raise ValueError("frames record is malformed")
        self.frames = {k: from_bin(c, m.get(k), m["n"], k) for k, c in FRAME_COLUMNS.items()}

    def check(self, data_start: int, data_end: int) -> None:
        """Check that frames tile the data section and rows point inside it, in order."""
        f = self.frames
        at, raw = data_start, 0
        for off, ln, r, rl in zip(f["off"], f["len"], f["raw"], f["rawlen"], strict=True):
            if off != at or r != raw or ln == 0:
                raise ValueError("frame table does not tile the data section")
            at, raw = off + ln, r + rl
        if at != data_end:
            raise ValueError("frame table does not end where the index starts")
        pos = self.cols["pos"]
        if len(pos) and (pos[-1] >= raw or not _increasing(pos)):
            raise ValueError("event offsets are out of order or past the data")
        if len(self.bpos) and (self.bpos[-1] >= raw or not _increasing(self.bpos)):
            raise ValueError("blob offsets are out of order or past the data")


def _increasing(a: array.array[int]) -> bool:
    # map() over operator.lt runs the loop in C: ~25% faster than a generator of pairs
    return all(map(operator.lt, a, itertools.islice(a, 1, None)))


def iter_batches(index: Index) -> Iterator[tuple[int, int]]:
    """(first, stop) event ranges of :data:`BATCH` events."""
    n = len(index)
    for i in range(0, n, BATCH):
        yield i, min(n, i + BATCH)
