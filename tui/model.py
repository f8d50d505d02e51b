"""The run as the TUI sees it: events in order, flags, filters, search.

No Textual here: :class:`RunModel` is plain data with O(log n) jumps, so the
timeline can stay responsive at 100,000 events and tests can check the logic
without a terminal.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import overload

import replay
from tui.render import int_text, jsonable_key

ERROR = "error"
DIVERGENCE = "divergence"
DRIFT = "drift"
FLAG_ORDER = (ERROR, DIVERGENCE, DRIFT)
"""The flags the app knows by name; others given from outside are shown as ``*``."""
GLYPHS = {ERROR: "!", DIVERGENCE: "≠", DRIFT: "~"}
"""One-character mark of each flag in the timeline."""


def auto_flags(ev: replay.Event) -> set[str]:
    """Flags an event carries by itself: ``error`` for a raised call or an HTTP status >= 400."""
    if ev.error is not None:
        return {ERROR}
    res = ev.response
    if ev.channel == "http" and isinstance(res, dict):
        status = res.get("status")
        if isinstance(status, int) and status >= 400:
            return {ERROR}
    return set()


def fmt_duration(ns: int) -> str:
    """``850ns``, ``12µs``, ``3.4ms``, ``1.25s``, ``2m05s``."""
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.0f}µs"
    if ns < 1_000_000_000:
        ms = ns / 1e6
        return f"{ms:.1f}ms" if ms < 100 else f"{ms:.0f}ms"
    s = ns / 1e9
    if s < 60:
        return f"{s:.2f}s"
    return f"{int(s // 60)}m{int(s % 60):02d}s"


def fmt_offset(ns: int) -> str:
    """Time since the run started: ``+12.345s``."""
    return f"+{ns / 1e9:.3f}s"


def haystack(ev: replay.Event) -> str:
    """Every string in an event's payloads (keys, values, chunk text, error), lowercased."""
    out: list[str] = [ev.channel]
    _strings(ev.request, out.append)
    _strings(ev.response, out.append)
    if ev.error is not None:
        out += (ev.error.type, ev.error.message)
    for c in ev.chunks:
        out.append(c.data.decode("utf-8", "replace"))
    return "\n".join(out).lower()


def _strings(value: object, put: Callable[[str], None]) -> None:
    if isinstance(value, str):
        put(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            put(k if isinstance(k, str) else jsonable_key(k))
            _strings(v, put)
    elif isinstance(value, list | tuple):
        for v in value:
            _strings(v, put)
    elif isinstance(value, bytes):
        put(value.decode("utf-8", "replace"))
    elif type(value) is int:
        put(int_text(value))
    elif value is not None:
        put(str(value))


class _Identity(Mapping[int, int]):
    """``index_of`` when seqs are exactly 0..n-1 in order: no million-entry dict."""

    def __init__(self, n: int) -> None:
        self._n = n

    def __getitem__(self, seq: int) -> int:
        if type(seq) is int and 0 <= seq < self._n:
            return seq
        raise KeyError(seq)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self._n))

    def __len__(self) -> int:
        return self._n


class _Ordered(Sequence[replay.Event]):
    """A packed run's events in ``seq`` order (``order``: file indexes), decoded on demand.

    An event that cannot be decoded (its frame is damaged: the file's checksums are
    checked in the background after the first paint) is shown as what the index says
    of it, with the reason as its error, instead of failing the screen that reads it.
    """

    def __init__(self, log: replay.EventLog, order: Sequence[int]) -> None:
        self._log = log
        self._order = order

    def __len__(self) -> int:
        return len(self._order)

    @overload
    def __getitem__(self, i: int) -> replay.Event: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[replay.Event]: ...

    def __getitem__(self, i: int | slice) -> replay.Event | Sequence[replay.Event]:
        if isinstance(i, slice):
            return [self._get(j) for j in self._order[i]]
        return self._get(self._order[i])

    def _get(self, j: int) -> replay.Event:
        log = self._log
        try:
            return log[j]
        except replay.CassetteError as exc:
            return replay.Event(
                seq=log.seq(j), channel=log.channel(j), request=None,
                error=replay.RecordedError(f"replay.{type(exc).__name__}",
                                           f"cannot read this event: {exc}"),
                start_ns=log.start_ns(j), duration_ns=log.duration_ns(j), task=log.task(j),
                parent=log.parent(j))


class RunModel:
    """Events sorted by ``seq`` with their flags, the current filter and its rows.

    Indexes (``i``) point into :attr:`events`; rows point into :attr:`rows`,
    the events that pass the filter.
    """

    def __init__(self, events: Iterable[replay.Event],
                 flags: Mapping[int, Iterable[str]] | None = None) -> None:
        self.flags: dict[int, set[str]] = {}
        """Flags by event index (only flagged events are present)."""
        self._by_flag: dict[str, list[int]] = {}
        self.events: Sequence[replay.Event]
        """Every event, in ``seq`` order."""
        self.index_of: Mapping[int, int]
        """Event index by ``seq``."""
        self.channel_names: list[str]
        """The channels present (the timeline sizes its channel column by them)."""
        self.last_start_ns = 0
        """The latest ``start_ns`` of any event (the timeline sizes its time column by it)."""
        self._channels: Counter[str] | None = None
        self._children: Counter[int] | None = None
        self._log: replay.EventLog | None = None
        if isinstance(events, replay.EventLog):
            self._from_index(events)
        else:
            evs = list(events)
            if any(evs[k].seq > evs[k + 1].seq for k in range(len(evs) - 1)):
                evs.sort(key=lambda e: e.seq)
            self.events = evs
            self.index_of = {ev.seq: i for i, ev in enumerate(evs)}
            self._channels = Counter(ev.channel for ev in evs)
            self.channel_names = list(self._channels)
            self._children = Counter(ev.parent for ev in evs if ev.parent is not None)
            self.last_start_ns = max((ev.start_ns for ev in evs), default=0)
            for i, ev in enumerate(evs):
                for f in auto_flags(ev):
                    self._flag(i, f)
        evs = self.events
        if flags:
            self.add_flags(flags)
        self.channel_filter: frozenset[str] = frozenset()
        """Channels shown (empty: all)."""
        self.flag_filter: str | None = None
        """Only events with this flag (``any`` for any flag), or None."""
        self.rows: Sequence[int] = range(len(evs))
        """Event indexes that pass the filter, in order."""
        self._row_of: dict[int, int] | None = None

    def __len__(self) -> int:
        return len(self.events)

    def _from_index(self, log: replay.EventLog) -> None:
        """Everything but the events themselves from a packed cassette's index: nothing
        is decoded until a row shows it, and only what the first screen needs is counted
        now (each pass over a million rows costs tens of milliseconds)."""
        order = log.seq_order()
        seqs = log.seqs()
        self._log = log
        self.events = _Ordered(log, order)
        if isinstance(order, range):
            n = len(seqs)
            if n == 0 or (seqs[0] == 0 and seqs[n - 1] == n - 1):  # sorted, so 0..n-1
                self.index_of = _Identity(n)
            else:
                self.index_of = {s: i for i, s in enumerate(seqs)}
        else:
            self.index_of = {seqs[j]: i for i, j in enumerate(order)}
        self.channel_names = list(log.channel_ids()[1])
        self.last_start_ns = max(log.start_column(), default=0)
        errors = log.flagged(replay.EventLog.RAISED | replay.EventLog.HTTP_ERROR)
        if not isinstance(order, range):  # file indexes -> indexes in seq order
            errors = sorted(self.index_of[seqs[j]] for j in errors)
        if errors:
            self._by_flag[ERROR] = errors
            self.flags = {i: {ERROR} for i in errors}

    @property
    def channels(self) -> Counter[str]:
        """Events per channel (counted when first asked for: the channel filter, stats)."""
        if self._channels is None:
            assert self._log is not None
            ids, names = self._log.channel_ids()
            self._channels = Counter({names[k]: c for k, c in Counter(ids).items()})
        return self._channels

    @property
    def children(self) -> Counter[int]:
        """Number of nested events by parent ``seq`` (counted when first asked for)."""
        if self._children is None:
            assert self._log is not None
            self._children = Counter(p for p in self._log.parent_column() if p >= 0)
        return self._children

    # --- flags -----------------------------------------------------------------------

    def _flag(self, i: int, flag: str) -> None:
        have = self.flags.setdefault(i, set())
        if flag not in have:
            have.add(flag)
            bisect.insort(self._by_flag.setdefault(flag, []), i)

    def add_flags(self, flags: Mapping[int, Iterable[str]]) -> None:
        """Add flags by ``seq``; unknown seqs are ignored."""
        for seq, names in flags.items():
            i = self.index_of.get(seq)
            if i is not None:
                for f in names:
                    self._flag(i, f)

    def set_flag(self, flag: str, seqs: Iterable[int]) -> None:
        """Give ``flag`` to exactly the events ``seqs`` (unknown seqs are ignored)."""
        for i in self._by_flag.pop(flag, []):
            have = self.flags.get(i)
            if have is not None:
                have.discard(flag)
                if not have:
                    del self.flags[i]
        self.add_flags({seq: (flag,) for seq in seqs})

    def flags_of(self, i: int) -> set[str]:
        """Flags of event ``i`` (empty when none)."""
        return self.flags.get(i, set())

    def flag_counts(self) -> dict[str, int]:
        """How many events carry each flag."""
        return {f: len(v) for f, v in self._by_flag.items()}

    def flagged(self, flag: str) -> list[int]:
        """Sorted indexes of events with ``flag``."""
        return self._by_flag.get(flag, [])

    # --- filter ----------------------------------------------------------------------

    def set_filter(self, channels: Iterable[str] = (), flag: str | None = None) -> None:
        """Show only these channels (none: all) and only events with ``flag``."""
        self.channel_filter = frozenset(channels)
        self.flag_filter = flag
        if not self.channel_filter and flag is None:
            self.rows = range(len(self.events))
        else:
            base: Iterable[int]
            if flag == "any":
                base = sorted(self.flags)
            elif flag is not None:
                base = self.flagged(flag)
            else:
                base = range(len(self.events))
            chans = self.channel_filter
            evs = self.events
            self.rows = [i for i in base if not chans or evs[i].channel in chans]
        self._row_of = None

    @property
    def filtered(self) -> bool:
        """True when a filter hides events."""
        return bool(self.channel_filter) or self.flag_filter is not None

    def row_of(self, i: int) -> int | None:
        """The row showing event ``i``, or None when it is filtered out."""
        if isinstance(self.rows, range):
            return i if 0 <= i < len(self.rows) else None
        if self._row_of is None:
            self._row_of = {e: r for r, e in enumerate(self.rows)}
        return self._row_of.get(i)

    def nearest_row(self, i: int) -> int:
        """The row of event ``i``, or of the first shown event after it (else the last)."""
        if not self.rows:
            return 0
        r = bisect.bisect_left(self.rows, i)
        return min(r, len(self.rows) - 1)

    # --- jumps -----------------------------------------------------------------------

    def next_in(self, indexes: Sequence[int], i: int, forward: bool = True) -> int | None:
        """The next (or previous) event of sorted ``indexes`` after ``i`` that is shown."""
        if forward:
            k = bisect.bisect_right(indexes, i)
            while k < len(indexes):
                if self.row_of(indexes[k]) is not None:
                    return indexes[k]
                k += 1
        else:
            k = bisect.bisect_left(indexes, i) - 1
            while k >= 0:
                if self.row_of(indexes[k]) is not None:
                    return indexes[k]
                k -= 1
        return None

    def next_flag(self, flag: str, i: int, forward: bool = True) -> int | None:
        """The next shown event with ``flag`` after (before) event ``i``."""
        return self.next_in(self.flagged(flag), i, forward)

    # --- search ----------------------------------------------------------------------

    def search(self, query: str, *, stop: Callable[[], bool] | None = None) -> list[int]:
        """Indexes of events whose payloads contain ``query`` (case-insensitive)."""
        q = query.lower()
        out = []
        for i, ev in enumerate(self.events):
            if stop is not None and i % 2048 == 0 and stop():
                break
            if q in haystack(ev):
                out.append(i)
        return out
