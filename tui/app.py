"""The agent-replay terminal UI: ``replay tui FILE [OTHER]``.

    app = ReplayApp("run.replay", flags={12: {"drift"}}, start_at=12)
    app.run()

The cassette (a path or a :class:`replay.Cassette`) is read in a worker while
a progress bar shows; a damaged file shows what could be read under a banner.
With ``other``, the two runs are aligned by ``replay.diff``: events that differ
are flagged ``divergence`` and the diff screen (``c``) shows them side by side.
``flags`` and ``notes`` (by event seq) let drift findings and other verdicts
from outside show in the timeline and the detail pane; ``start_at`` (a seq, or
a flag name such as ``"error"``) puts the cursor on the event to look at first.
"""

from __future__ import annotations

import dataclasses
import gc
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from rich.markup import escape
from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen

import replay
from tui.diff_screen import DiffScreen
from tui.main_screen import MainScreen
from tui.modals import HelpScreen
from tui.model import DIVERGENCE, RunModel
from tui.stats import StatsScreen

Source = replay.Cassette | str | os.PathLike[str]
"""A cassette, or the path of one."""


class ReplayApp(App[None]):
    """Step through a recorded agent run; compare it with another."""

    CSS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "replay.tcss")
    TITLE = "agent-replay"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", show=False),
    ]

    def __init__(self, cassette: Source, other: Source | None = None, *,
                 flags: Mapping[int, Iterable[str]] | None = None,
                 notes: Mapping[int, Sequence[str]] | None = None,
                 start_at: int | str | None = None) -> None:
        super().__init__()
        self.source = cassette
        """The run to show (the left one when comparing)."""
        self.other_source = other
        """The run to compare with, if any."""
        self.extra_flags = {seq: set(f) for seq, f in (flags or {}).items()}
        """Flags given from outside, by seq (drift findings, verdicts)."""
        self.notes = {seq: list(n) for seq, n in (notes or {}).items()}
        """Sentences about events, by seq (drift findings), shown in the detail pane."""
        self.start_at = start_at
        """Where the cursor starts: an event seq, or a flag name (its first event)."""
        self.cassette: replay.Cassette | None = None
        """The cassette once read."""
        self.model: RunModel | None = None
        """The run once indexed."""
        self.run_diff: replay.RunDiff | None = None
        """The alignment with ``other`` once computed."""
        self.diff_error: str | None = None
        """Why there is no diff with ``other`` (it could not be read)."""
        self.load_error: str | None = None
        """Why nothing could be shown at all."""
        self.title_text = ""

    def get_default_screen(self) -> Screen[Any]:
        return MainScreen()

    @property
    def main(self) -> MainScreen:
        """The main screen (always at the bottom of the stack)."""
        screen = self.screen_stack[0]
        assert isinstance(screen, MainScreen)
        return screen

    def begin_load(self) -> None:
        """Start reading (the main screen calls this once it is mounted)."""
        what = escape(self._short_name(self.source))
        if not isinstance(self.source, replay.Cassette):
            try:
                what += f" ({os.path.getsize(self.source) / 1e6:.1f} MB)"
            except OSError:
                pass
        self.main.progress(f"reading {what}…")
        self.call_after_refresh(self.load)  # paint the loading screen first

    @staticmethod
    def _short_name(source: Source) -> str:
        if isinstance(source, replay.Cassette):
            return os.path.basename(source.path) or "<cassette>"
        return os.path.basename(os.fspath(source))

    # --- loading ---------------------------------------------------------------------

    def _read(self, source: Source) -> replay.Cassette:
        cassette = (source if isinstance(source, replay.Cassette)
                    else replay.read_cassette(source, strict=False))
        return _shown(cassette)

    def _say(self, label: str, done: float | None = None, total: float | None = None) -> None:
        self.call_from_thread(self.main.progress, label, done, total)

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        """Read, index and (with ``other``) align, reporting progress; then show."""
        try:
            cassette = self._read(self.source)
        except (replay.CassetteError, OSError) as exc:
            self.load_error = str(exc)
            self.call_from_thread(self.main.show_failure, str(exc))
            return
        n = len(cassette.events)
        self._say(f"indexing {n:,} events…", 0, 2)
        model = RunModel(cassette.events, self.extra_flags)
        self._say(f"indexing {n:,} events…", 1, 2)
        if self.other_source is not None:
            self._align(cassette, model)
        self._say("drawing…", 2, 2)
        self.cassette, self.model = cassette, model
        # A run is millions of long-lived objects: left to the cyclic GC, every
        # full collection walks them all (~0.5 s at 100,000 events, a frozen
        # keystroke). They live as long as the app, so take them out of its sight.
        gc.freeze()
        self.title_text = self._title(cassette, model)
        damage = str(cassette.damage) if cassette.damage is not None else None
        self.call_from_thread(self.main.show_run, model, self.title_text, damage, self.start_at)

    def _align(self, cassette: replay.Cassette, model: RunModel) -> None:
        assert self.other_source is not None
        self._say(f"aligning with {self._short_name(self.other_source)}…", 1, 2)
        try:
            other = self._read(self.other_source)
            result = replay.diff(cassette, other, allow_damaged=True)
        except (replay.CassetteError, OSError) as exc:
            self.diff_error = f"cannot read the other run: {exc}"
            return
        self.run_diff = result
        model.add_flags({p.left.seq: {DIVERGENCE} for p in result.pairs
                         if p.differs and p.left is not None})

    def _title(self, cassette: replay.Cassette, model: RunModel) -> str:
        h = cassette.header
        when = h.created.replace("T", " ")[:19]
        argv = " ".join(h.argv)[:60]
        title = (f"[b]{escape(self._short_name(cassette))}[/b]  {len(model):,} events  ·  "
                 f"recorded {escape(when)}  ·  {escape(argv)}")
        if self.other_source is not None:
            title += f"  ·  vs [b]{escape(self._short_name(self.other_source))}[/b]"
            diff = self.run_diff
            if diff is not None and diff.first_index is not None:
                pair = diff.pairs[diff.first_index]
                seq = pair.left.seq if pair.left is not None else None
                title += f": first divergence at #{seq}" if seq is not None else ": differs"
            elif diff is not None:
                title += ": same"
        return title

    # --- other screens ---------------------------------------------------------------

    def open_diff(self) -> None:
        """The side-by-side diff (needs ``other``)."""
        if self.run_diff is not None:
            self.push_screen(DiffScreen(self.run_diff))
        elif self.other_source is None:
            self.main.notice("no second run: open with  replay tui FILE OTHER  to compare")
        else:
            self.main.notice(self.diff_error or "still aligning the runs…")

    def open_stats(self) -> None:
        """The stats screen."""
        if self.model is None:
            self.main.notice("still loading…")
            return
        self.push_screen(StatsScreen(self.model, self.title_text))

    def action_open_help(self) -> None:
        self.open_help()

    def open_help(self) -> None:
        """Every binding of the current screen, then the others."""
        groups: list[tuple[str, Iterable[BindingType]]] = [
            ("Main screen", MainScreen.BINDINGS),
            ("Diff screen (c)", DiffScreen.BINDINGS),
            ("Stats screen (s)", StatsScreen.BINDINGS),
            ("Channel filter (f)", _filter_bindings()),
            ("Everywhere", self.BINDINGS),
        ]
        self.push_screen(HelpScreen(groups))


def _filter_bindings() -> list[BindingType]:
    from tui.modals import ChannelFilter
    return [*ChannelFilter.BINDINGS, Binding("space", "toggle", "Toggle the channel")]


_REDACTOR = replay.Redactor()


def _shown(cassette: replay.Cassette) -> replay.Cassette:
    """The run as it may be shown: redacted with the default rules, whatever it was
    written with (nothing to do for a cassette written under the current ones)."""
    if _REDACTOR.applied(cassette.header.meta):
        return cassette
    h = cassette.header
    header = dataclasses.replace(h, argv=_REDACTOR.argv(h.argv), meta=_REDACTOR.meta(h.meta))
    return dataclasses.replace(cassette, header=header,
                               events=tuple(_REDACTOR(e) for e in cassette.events))
