"""The step tree: the run as agent steps (``replay.steps``), each a collapsible row over
its events, with a latency waterfall on the run's time axis and tokens and cost.

A :class:`StepTree` is a :class:`~tui.timeline.Timeline` with other rows: a step row
(``▾ 2  gpt-4o -> lookup_order``, its events, duration, tokens, cost, the running
cost, a bar of its span) and, when expanded, one row per event of the step (nested
events indented), each with its bar. Every row stands for an event (a step row for
its model call), so jumps, search and the right pane work as on the flat timeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment

import replay
from tui.model import DIVERGENCE, DRIFT, ERROR, GLYPHS, fmt_duration
from tui.render import line_summary
from tui.timeline import Timeline

BAR = "█"
"""A waterfall bar's cell; a span shorter than one cell gets a thin mark."""
THIN = "▏"


def fmt_tokens(n: int) -> str:
    """``812``, ``12.3k``, ``1.20M``."""
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1e3:.1f}k"
    return f"{n / 1e6:.2f}M"


def fmt_cost(cost: float | None) -> str:
    """``$0.00071``; ``$?`` when a model's price is unknown."""
    if cost is None:
        return "$?"
    return f"${cost:.5f}" if cost < 1 else f"${cost:.2f}"


def waterfall(start_ns: int, end_ns: int, span_ns: int, width: int) -> tuple[int, int]:
    """Where a bar goes on a ``width``-cell axis of ``span_ns``: (first cell, cells)."""
    if width <= 0:
        return 0, 0
    span = max(span_ns, 1)
    first = min(width - 1, max(0, start_ns * width // span))
    last = min(width, max(first + 1, -(-end_ns * width // span)))
    return first, last - first


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the tree."""

    step: int
    """Index of the step in :attr:`StepTree.steps`."""
    event: int | None = None
    """Event index for an event row; None for the step's own row."""
    depth: int = 0
    """Nesting of an event row inside another event of the step."""


class StepTree(Timeline, inherit_bindings=False):
    """Steps and, expanded, their events, with a waterfall (``t`` on the main screen)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        *Timeline.COMPONENT_CLASSES, "steptree--step", "steptree--bar", "steptree--model-bar",
        "steptree--cost",
    }

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.steps: Sequence[replay.Step] = ()
        """The run's steps, in order."""
        self.collapsed: set[int] = set()
        """Steps shown without their events."""
        self._rows: list[Row] = []
        self._step_of: dict[int, int] = {}
        self._anchor: list[int] = []
        self._depth: dict[int, int] = {}
        self._span = 1

    def set_steps(self, steps: Sequence[replay.Step]) -> None:
        """The steps of the run shown (call after ``set_model``); all expanded."""
        self.steps = steps
        index_of = self.model.index_of
        self._step_of = {index_of[e.seq]: k for k, st in enumerate(steps) for e in st.events
                         if e.seq in index_of}
        self._anchor = [index_of.get(st.seq, 0) for st in steps]
        self._depth = {}
        for st in steps:
            parents = {e.seq: e.parent for e in st.events}
            for e in st.events:
                depth, up, seen = 0, e.parent, {e.seq}
                while up is not None and up in parents and up not in seen:
                    seen.add(up)
                    depth, up = depth + 1, parents[up]
                self._depth[e.seq] = depth
        self._span = max((st.end_ns for st in steps), default=1) or 1
        self.collapsed = set()
        self._relayout()

    def _relayout(self, keep: int | None = None) -> None:
        """Rebuild the rows (steps collapsed or expanded, filter changed)."""
        shown = self.model.rows
        passes = (lambda i: True) if isinstance(shown, range) else set(shown).__contains__
        evs, index_of = self.model.events, self.model.index_of
        rows: list[Row] = []
        for k, st in enumerate(self.steps):
            mine = [index_of[e.seq] for e in st.events if e.seq in index_of]
            visible = [i for i in mine if passes(i)]
            if not visible:
                continue
            rows.append(Row(k))
            if k not in self.collapsed:
                rows += [Row(k, i, self._depth.get(evs[i].seq, 0)) for i in visible]
        self._rows = rows
        self.reset_rows(keep)

    # --- rows ------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def row_at(self, row: int) -> Row | None:
        """The row under ``row`` (None past the end)."""
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def index_at(self, row: int) -> int:
        r = self._rows[row]
        return r.event if r.event is not None else self._anchor[r.step]

    def row_for(self, i: int) -> int | None:
        k = self._step_of.get(i)
        if k is None:
            return None
        if k in self.collapsed and i != self._anchor[k]:
            self.collapsed.discard(k)  # a jump into a collapsed step opens it
            self._relayout()
        for n, r in enumerate(self._rows):
            if r.step == k and (r.event == i or (r.event is None and i == self._anchor[k])):
                return n
        return None

    def nearest_row(self, i: int) -> int:
        row = self.row_for(i)
        if row is not None:
            return row
        for n in range(len(self._rows)):
            if self.index_at(n) >= i:
                return n
        return max(0, len(self._rows) - 1)

    def row_key(self, row: int) -> object:
        return self._rows[row]

    @property
    def step(self) -> replay.Step | None:
        """The step the cursor is in."""
        r = self.row_at(self.cursor)
        return self.steps[r.step] if r is not None else None

    @property
    def on_step_row(self) -> bool:
        """True when the cursor is on a step's own row."""
        r = self.row_at(self.cursor)
        return r is not None and r.event is None

    # --- collapsing ------------------------------------------------------------------

    def toggle(self, open_: bool | None = None) -> None:
        """Collapse or expand the step under the cursor (``open_``: force one way); the
        cursor goes to the step's row."""
        r = self.row_at(self.cursor)
        if r is None:
            return
        want = (r.step in self.collapsed) if open_ is None else open_
        if want:
            self.collapsed.discard(r.step)
        else:
            self.collapsed.add(r.step)
        self._relayout(self._anchor[r.step])

    def set_all(self, open_: bool) -> None:
        """Expand (or collapse) every step."""
        here = self.index
        self.collapsed = set() if open_ else set(range(len(self.steps)))
        r = self.row_at(self.cursor)
        self._relayout(self._anchor[r.step] if r is not None and not open_ else here)

    def refilter(self, keep: int | None) -> None:
        """The model's filter changed."""
        self._relayout(keep)

    # --- rendering -------------------------------------------------------------------

    def build_row(self, row: int, width: int) -> list[Segment]:
        r = self._rows[row]
        st = self.steps[r.step]
        wf = max(8, width // 5)
        room = max(8, width - wf - 1)
        if r.event is None:
            head = self._step_text(r.step, st, room)
            start, end = st.start_ns, st.end_ns
            bar = self.get_component_rich_style("steptree--model-bar")
        else:
            head = self._event_text(r, room)
            ev = self.model.events[r.event]
            start, end = ev.start_ns, ev.start_ns + ev.duration_ns
            bar = self.get_component_rich_style(
                "steptree--model-bar" if st.event is not None and ev.seq == st.event.seq
                else "steptree--bar")
        first, cells = waterfall(start, end, self._span, wf)
        base = self._base()
        glyph = BAR * cells if end - start >= self._span / max(wf, 1) else THIN
        segs = [*head, Segment(" ", base), Segment(" " * first, base),
                Segment(glyph, bar), Segment(" " * max(0, wf - first - len(glyph)), base)]
        return list(Segment.adjust_line_length(segs, width, base))

    def _step_text(self, k: int, st: replay.Step, room: int) -> list[Segment]:
        """``▾  2 gpt-4o -> lookup_order  ≠   4 ev  60.6ms  320 tok $0.00098 Σ$0.00169``:
        the right-hand facts by priority (duration, running cost, cost, tokens, events)
        as far as the width allows, the name at least 26 cells."""
        get = self.get_component_rich_style
        base = self._base()
        mark = "▸" if k in self.collapsed else "▾"
        usage, total = st.usage, st.total
        facts = [(0, f"{fmt_duration(st.duration_ns):>7}")]
        if total.calls:
            facts.append((4, f"Σ{fmt_cost(total.cost_usd):>8}"))
        if usage is not None:
            facts += [(3, f"{fmt_cost(usage.cost_usd):>8}"),
                      (2, f"{fmt_tokens(usage.total_tokens):>6} tok")]
        elif any(s.usage is not None for s in self.steps):
            facts += [(3, " " * 8), (2, " " * 10)]
        facts.append((1, f"{len(st.events):>3} ev"))
        name = f"{mark} {k:>2} {st.name}"
        name_min = min(len(name), 16 if room < 48 else 26)
        keep: list[tuple[int, str]] = []
        for order, text in facts:  # in priority order
            if sum(len(t) + 1 for _, t in keep) + len(text) + 1 + name_min + 3 <= room:
                keep.append((order, text))
        right = "".join(f" {t}" for _, t in sorted(keep))
        flags = set().union(*(self.model.flags_of(i) for i in self._events_of(k)))
        marks = "".join(GLYPHS[f] for f in (ERROR, DIVERGENCE, DRIFT) if f in flags)
        left_room = max(4, room - len(right) - 3)
        name = name if len(name) <= left_room else name[: left_room - 1] + "…"
        return [Segment(f"{name:<{left_room}}", get("steptree--step")),
                Segment(f"{marks:>3}", get("timeline--divergence")),
                Segment(right, get("steptree--cost")),
                Segment(" " * max(0, room - left_room - 3 - len(right)), base)]

    def _events_of(self, k: int) -> list[int]:
        index_of = self.model.index_of
        return [index_of[e.seq] for e in self.steps[k].events if e.seq in index_of]

    def _event_text(self, r: Row, room: int) -> list[Segment]:
        assert r.event is not None
        get = self.get_component_rich_style
        base = self._base()
        ev = self.model.events[r.event]
        flags = self.model.flags_of(r.event)
        marks = "".join(GLYPHS[f] for f in (ERROR, DIVERGENCE, DRIFT) if f in flags)
        mark = "▌" if r.event in self.matches else " "
        narrow = room < 48  # a narrow tree: no channel column (the summary names the call)
        indent = ("  " if narrow else "   ") + "  " * r.depth
        seq = f"{ev.seq:>{self._widths[0]}} "
        chan = ev.channel.split(":", 1)[0][:5]
        chan_col = "" if narrow else f"{chan:<5} "
        duration = fmt_duration(ev.duration_ns)
        wd, wf = (7, 2) if narrow else (8, 3)
        text_room = max(4, room - len(mark) - len(indent) - len(seq) - len(chan_col) - wd - wf)
        text = line_summary(ev, text_room)
        return [Segment(mark, get("timeline--match") if mark != " " else base),
                Segment(indent, base), Segment(seq, get("timeline--seq")),
                Segment(chan_col, get("timeline--http") if chan == "http" else
                        get("timeline--tool") if chan in ("tool", "captu")
                        else get("timeline--channel")),
                Segment(f"{text:<{text_room}}", get("timeline--flagged") if flags else base),
                Segment(f"{duration:>{wd}}", get("timeline--duration")),
                Segment(f"{marks:>{wf}}", get("timeline--error") if ERROR in flags
                        else get("timeline--divergence"))]
