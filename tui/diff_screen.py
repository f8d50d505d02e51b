"""The diff screen: two runs side by side, aligned by ``replay.diff``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import ClassVar, Protocol, cast

from rich.console import Group, RenderableType
from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Footer, Static

import replay
from tui.render import (
    around_difference,
    damage_banner,
    highlight,
    line_summary,
    pair_changes,
)

__all__ = ["DiffScreen", "around_difference", "pair_detail"]

GLYPH = {"same": " ", "changed": "≠", "only-left": "<", "only-right": ">", "moved": "↕"}
NOISE_GLYPH = "≈"
"""The mark of a pair that differs only in noise (ids, clock, random values)."""


class NoiseHost(Protocol):
    """What the diff screen asks of the app (``tui.app.ReplayApp``): one noise setting
    for both screens."""

    def toggle_noise(self) -> bool: ...
    def noise_line(self) -> str: ...


def status_name(pair: replay.AlignedPair) -> str:
    """The pair's status as text (``same``, ``changed``...)."""
    return pair.status.value


class PairTable(ScrollView, can_focus=True, inherit_bindings=False):
    """Aligned pairs, one line each, left run | right run (virtual, like the timeline)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "pairs--cursor", "pairs--changed", "pairs--only", "pairs--first", "pairs--seq",
        "pairs--noise",
    }
    cursor: reactive[int] = reactive(0, init=False)

    def __init__(self, diff: replay.RunDiff, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.diff = diff
        self.pairs = diff.pairs
        self._seqw = max((len(str(e.seq)) for p in self.pairs for e in (p.left, p.right)
                          if e is not None), default=1)
        self.show_noise = False
        """True when pairs that differ only in noise are marked as differences."""

    def on_mount(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.pairs))

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, len(self.pairs))

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self.pairs) - 1))

    def watch_cursor(self, old: int, new: int) -> None:
        height = self.scrollable_content_region.height or 1
        top = round(self.scroll_y)
        if new < top:
            self.scroll_to(y=new, animate=False, immediate=True)
        elif new >= top + height:
            self.scroll_to(y=new - height + 1, animate=False, immediate=True)
        for row in (old, new):
            y = row - round(self.scroll_y)
            self.refresh(Region(0, y, self.size.width, 1))
        screen = self.screen
        if isinstance(screen, DiffScreen):
            screen.show_pair()

    def on_click(self, event: events.Click) -> None:
        self.cursor = round(self.scroll_y) + event.y

    def _side(self, ev: replay.Event | None, width: int) -> str:
        if ev is None:
            return " " * width
        head = f"{ev.seq:>{self._seqw}} {ev.channel[:14]:<14} "
        return f"{head}{line_summary(ev, max(4, width - len(head)))}"[:width].ljust(width)

    def render_line(self, y: int) -> Strip:
        row = round(self.scroll_y) + y
        width = self.scrollable_content_region.width
        if row >= len(self.pairs):
            return Strip.blank(width, self.rich_style)
        pair = self.pairs[row]
        name = status_name(pair)
        half = max(10, (width - 3) // 2)
        get = self.get_component_rich_style
        glyph = GLYPH.get(name, "?")
        if row == self.diff.first_index:
            style = get("pairs--first")
        elif pair.is_noise:
            style = get("pairs--changed") if self.show_noise else get("pairs--noise")
            glyph = NOISE_GLYPH
        elif name.startswith("only"):
            style = get("pairs--only")
        elif pair.differs:
            style = get("pairs--changed")
        else:
            style = self.rich_style
        segs = [Segment(self._side(pair.left, half), style),
                Segment(f" {glyph} ", style),
                Segment(self._side(pair.right, width - half - 3), style)]
        line = list(Segment.adjust_line_length(segs, width, self.rich_style))
        if row == self.cursor:
            line = list(Segment.apply_style(line, post_style=get("pairs--cursor")))
        return Strip(line, width)


def pair_detail(pair: replay.AlignedPair, first: bool, show_noise: bool = False
                ) -> RenderableType:
    """What differs in one pair: the structural changes (noise collapsed into one line
    unless ``show_noise``) and prompt/answer text diffs."""
    parts: list[RenderableType] = []
    kind = "" if status_name(pair) == "same" else (
        " · noise only" if pair.is_noise else f" · {pair.kind.value}")
    label = Text.assemble(("FIRST DIVERGENCE  " if first else "", "bold reverse red"),
                          (status_name(pair), "bold"), f"{kind} · {pair.what()}")
    left, right = pair.left, pair.right
    label.append(f"   left #{left.seq if left else '-'} ↔ right #{right.seq if right else '-'}",
                 style="dim")
    parts.append(label)
    parts += pair_changes(pair, show_noise)
    for title, text in (("prompt", pair.prompt_diff), ("answer", pair.output_diff)):
        if text:
            parts.append(Text(f"{title} text diff", style="bold #7aa2f7"))
            parts.append(highlight(text.rstrip(), "diff"))
    return Group(*parts)


class DiffScreen(Screen[None]):
    """Two runs side by side; n / N step through differences, f jumps to the first."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,c", "app.pop_screen", "Back"),
        Binding("j,down", "move(1)", "Next row", show=False),
        Binding("k,up", "move(-1)", "Previous row", show=False),
        Binding("g,home", "edge(0)", "First row", show=False),
        Binding("G,end", "edge(1)", "Last row", show=False),
        Binding("pagedown,ctrl+f", "page(1)", "Page down", show=False),
        Binding("pageup,ctrl+b", "page(-1)", "Page up", show=False),
        Binding("n", "difference(1)", "Next difference"),
        Binding("N", "difference(-1)", "Previous difference"),
        Binding("f", "first", "First divergence"),
        Binding("z", "noise", "Show / hide noise"),
        Binding("J", "scroll_detail(1)", "Scroll changes down", show=False),
        Binding("K", "scroll_detail(-1)", "Scroll changes up", show=False),
        Binding("question_mark", "app.open_help", "Help"),
    ]

    def __init__(self, diff: replay.RunDiff, *, show_noise: bool = False,
                 first: str = "", noise: str = "", damage: Sequence[str] = ()) -> None:
        super().__init__()
        self.diff = diff
        self.show_noise = show_noise
        """True when pairs that differ only in noise count as differences."""
        self.first_text = first
        """The first divergence in words (``tui.app.first_divergence_text``)."""
        self.noise_text = noise
        """The one line about noise (``tui.app.noise_summary``)."""
        self.damage = tuple(damage)
        """One sentence per damaged cassette, for the banner."""

    @property
    def table(self) -> PairTable:
        """The pair list."""
        return self.query_one(PairTable)

    def compose(self) -> ComposeResult:
        kinds = self.diff.kinds()
        summary = ", ".join(f"{kinds[k]} {k}" for k in ("behaviour", "input") if kinds.get(k))
        first = self.diff.first_index
        where = self.first_text or ("runs are the same" if first is None else "differ")
        left, right = (os.path.basename(n) or n for n in (self.diff.left_name,
                                                          self.diff.right_name))
        yield Static(Text.assemble(("Diff ", "bold"), f"{left} ", ("↔", "bold"), f" {right}  ·  ",
                                   (where, "bold red" if first is not None else "bold green"),
                                   f"  ·  {summary}" if summary else ""),
                     id="title")
        if self.damage:
            yield Static(damage_banner(self.damage), id="banner")
        yield Static(self._noise_line(), id="noise-line")
        yield PairTable(self.diff, id="pairs")
        with VerticalScroll(id="pair-detail"):
            yield Static(id="pair-body")
        yield Footer()

    def _noise_line(self) -> Text:
        text = self.noise_text or "no noise: the runs differ only where it matters"
        return Text(text, style="dim")

    def on_mount(self) -> None:
        self.table.show_noise = self.show_noise
        self.table.focus()
        first = self.diff.first_index
        if first is not None:
            self.table.cursor = first
        self.show_pair()

    def show_pair(self) -> None:
        """Show the changes of the pair under the cursor."""
        body = self.query_one("#pair-body", Static)
        if not self.diff.pairs:
            body.update(Text("both runs are empty", style="dim"))
            return
        row = self.table.cursor
        body.update(pair_detail(self.diff.pairs[row], row == self.diff.first_index,
                                self.show_noise))
        self.query_one("#pair-detail", VerticalScroll).scroll_home(animate=False)

    def action_move(self, delta: int) -> None:
        self.table.cursor = self.table.validate_cursor(self.table.cursor + delta)

    def action_edge(self, end: int) -> None:
        self.table.cursor = len(self.diff.pairs) - 1 if end else 0

    def action_page(self, direction: int) -> None:
        step = max(1, self.table.scrollable_content_region.height - 1)
        self.action_move(direction * step)

    def action_difference(self, direction: int) -> None:
        r = self.table.cursor + direction
        pairs = self.diff.pairs
        while 0 <= r < len(pairs):
            if pairs[r].differs or (self.show_noise and pairs[r].is_noise):
                self.table.cursor = r
                return
            r += direction
        self.notify("no more differences", timeout=2)

    def action_noise(self) -> None:
        """Show noise (mark its pairs, list its changes), or hide it again; the main
        screen follows (``v`` walks noise too while it is shown)."""
        host = cast(NoiseHost, self.app)
        self.show_noise = host.toggle_noise()
        self.noise_text = host.noise_line()
        self.table.show_noise = self.show_noise
        self.query_one("#noise-line", Static).update(self._noise_line())
        self.table.refresh()
        self.show_pair()

    def action_first(self) -> None:
        if self.diff.first_index is not None:
            self.table.cursor = self.diff.first_index

    def action_scroll_detail(self, direction: int) -> None:
        self.query_one("#pair-detail", VerticalScroll).scroll_relative(y=5 * direction,
                                                                       animate=False)
