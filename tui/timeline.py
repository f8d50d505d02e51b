"""The timeline: one line per event, rendered on demand with the Line API.

Only the lines on screen are ever built (and a few thousand are cached), so
moving the cursor costs the same at 100 events and at 100,000.
"""

from __future__ import annotations

from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

import replay
from tui.model import DIVERGENCE, DRIFT, ERROR, FLAG_ORDER, GLYPHS, RunModel, fmt_duration
from tui.render import line_summary

_CACHE_LIMIT = 4096
NARROW = 64
"""Below this width a line leaves out the time column and shortens the channel."""


class Timeline(ScrollView, can_focus=True, inherit_bindings=False):
    """A virtual list of a :class:`RunModel`'s rows with a cursor."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "timeline--cursor", "timeline--seq", "timeline--offset", "timeline--channel",
        "timeline--http", "timeline--tool", "timeline--duration", "timeline--nested",
        "timeline--error", "timeline--divergence", "timeline--drift", "timeline--match",
        "timeline--flagged",
    }

    cursor: reactive[int] = reactive(0, always_update=False, init=False)
    """The highlighted row."""

    class Highlighted(Message):
        """The cursor moved to another event."""

        def __init__(self, timeline: Timeline, index: int | None) -> None:
            self.timeline = timeline
            """The list whose cursor moved."""
            self.index = index
            """Event index under the cursor (None when no row is shown)."""
            super().__init__()

        @property
        def control(self) -> Timeline:
            """The list whose cursor moved."""
            return self.timeline

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.model = RunModel([])
        self.matches: set[int] = set()
        """Event indexes matching the current search, marked in the line."""
        self._cache: dict[tuple[object, int], list[Segment]] = {}
        self._widths = (1, 8, 8)
        self._base_style: Style | None = None

    # --- data ------------------------------------------------------------------------

    def set_model(self, model: RunModel, index: int = 0) -> None:
        """Show ``model`` with the cursor on event ``index``."""
        self.model = model
        evs = model.events
        longest = max(model.channel_names, key=len, default="")
        last = model.last_start_ns
        self._widths = (len(str(evs[-1].seq)) if evs else 1,
                        len(f"+{last / 1e9:.3f}s"), min(max(len(longest), 5), 14))
        self.reset_rows(index)

    def reset_rows(self, index: int | None = None) -> None:
        """Rows changed (filter): resize and put the cursor on event ``index`` or nearest."""
        self._cache.clear()
        self.virtual_size = Size(self.size.width, self.row_count)
        row = self.nearest_row(index) if index is not None else 0
        if self.cursor == row:
            self._moved()
        else:
            self.cursor = row
        self.refresh()

    def _base(self) -> Style:
        if self._base_style is None:
            self._base_style = self.rich_style
        return self._base_style

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._base_style = None
        self._cache.clear()

    def clear_cache(self) -> None:
        """Forget built lines (flags or matches changed)."""
        self._cache.clear()
        self.refresh()

    # --- rows (a subclass may show other rows: see tui.steptree) ------------------------

    @property
    def row_count(self) -> int:
        """Number of rows."""
        return len(self.model.rows)

    def index_at(self, row: int) -> int:
        """The event index a row shows (``0 <= row < row_count``)."""
        return self.model.rows[row]

    def row_for(self, i: int) -> int | None:
        """The row showing event ``i``, or None when it is filtered out."""
        return self.model.row_of(i)

    def nearest_row(self, i: int) -> int:
        """The row of event ``i``, or of the first shown event after it."""
        return self.model.nearest_row(i)

    def row_key(self, row: int) -> object:
        """What a row's built line is cached under."""
        return self.model.rows[row]

    def build_row(self, row: int, width: int) -> list[Segment]:
        """The segments of a row, ``width`` cells."""
        return self._build(self.model.rows[row], width)

    @property
    def index(self) -> int | None:
        """Event index under the cursor."""
        return self.index_at(self.cursor) if 0 <= self.cursor < self.row_count else None

    @property
    def event(self) -> replay.Event | None:
        """The event under the cursor."""
        i = self.index
        return None if i is None else self.model.events[i]

    def select_index(self, i: int) -> bool:
        """Move the cursor to event ``i``; False when it is filtered out."""
        row = self.row_for(i)
        if row is None:
            return False
        if row == self.cursor:
            self._moved()
        self.cursor = row
        return True

    # --- cursor ----------------------------------------------------------------------

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, self.row_count - 1))

    def watch_cursor(self, old: int, new: int) -> None:
        self.refresh_line(old)
        self.refresh_line(new)
        self._moved()

    def _moved(self) -> None:
        self._scroll_to_cursor()
        self.post_message(self.Highlighted(self, self.index))

    def _scroll_to_cursor(self) -> None:
        height = self.scrollable_content_region.height or 1
        top = round(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def move(self, delta: int) -> None:
        """Move the cursor by ``delta`` rows."""
        self.cursor = self.validate_cursor(self.cursor + delta)

    @property
    def page(self) -> int:
        """Rows per screen."""
        return max(1, self.scrollable_content_region.height - 1)

    def refresh_line(self, row: int) -> None:
        """Repaint one row if it is on screen."""
        y = row - round(self.scroll_y)
        if 0 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def on_resize(self, event: events.Resize) -> None:
        self._cache.clear()
        self.virtual_size = Size(event.size.width, self.row_count)
        self._scroll_to_cursor()

    def on_click(self, event: events.Click) -> None:
        row = round(self.scroll_y) + event.y
        if 0 <= row < self.row_count:
            self.cursor = row

    # --- rendering -------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        row = round(self.scroll_y) + y
        width = self.scrollable_content_region.width
        if row >= self.row_count or width <= 0:
            return Strip.blank(width, self._base())
        key = (self.row_key(row), width)
        segments = self._cache.get(key)
        if segments is None:
            segments = self.build_row(row, width)
            if len(self._cache) > _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = segments
        if row == self.cursor:
            style = self.get_component_rich_style("timeline--cursor")
            if not self.has_focus:
                style = Style(bgcolor=style.bgcolor)
            segments = list(Segment.apply_style(segments, post_style=style))
        return Strip(segments, width)

    def _build(self, i: int, width: int) -> list[Segment]:
        ev = self.model.events[i]
        flags = self.model.flags_of(i)
        ws, wo, wc = self._widths
        narrow = width < NARROW
        get = self.get_component_rich_style
        base = self._base()
        chan_style = get("timeline--http") if ev.channel == "http" else (
            get("timeline--tool") if ev.channel.startswith(("tool:", "capture:"))
            else get("timeline--channel"))
        mark = "▌" if i in self.matches else " "
        duration = fmt_duration(ev.duration_ns)
        flag_room = 2 if narrow else 3
        if narrow:  # no time column; the channel's kind only (the summary names the tool)
            wo, wc, wd = 0, min(wc, 5), 7
            channel = ev.channel.split(":", 1)[0][:wc]
        else:
            wd, channel = 8, ev.channel[:wc]
        fixed = (1 + ws + (1 if narrow else 2) + (wo + 1 if wo else 0) + wc + 1 + 1 + wd + 1
                 + flag_room)
        room = max(8, width - fixed)
        nested = ("↳ " if narrow else "  ↳ ") if ev.parent is not None else ""
        text = line_summary(ev, room - len(nested))
        segs = [
            Segment(mark, get("timeline--match") if mark != " " else base),
            Segment(f"{ev.seq:>{ws}}{' ' if narrow else '  '}", get("timeline--seq")),
        ]
        if wo:
            segs.append(Segment(f"{'+%.3fs' % (ev.start_ns / 1e9):>{wo}} ",
                                get("timeline--offset")))
        segs.append(Segment(f"{channel:<{wc}} ", chan_style))
        if nested:
            segs.append(Segment(nested, get("timeline--nested")))
        segs.append(Segment(f"{text:<{room - len(nested)}} ",
                            get("timeline--flagged") if flags else base))
        segs.append(Segment(f"{duration:>{wd}} ", get("timeline--duration")))
        styles = {ERROR: "timeline--error", DIVERGENCE: "timeline--divergence",
                  DRIFT: "timeline--drift"}
        marks = []
        for f in FLAG_ORDER:
            if f in flags:
                marks.append(Segment(GLYPHS[f], get(styles[f])))
        if any(f not in GLYPHS for f in flags):
            marks.append(Segment("*", get("timeline--drift")))
        pad = flag_room - len(marks)
        segs += marks[:flag_room]
        if pad > 0:
            segs.append(Segment(" " * pad, base))
        return list(Segment.adjust_line_length(segs, width, base))
