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
import threading
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
from tui.render import change_text
from tui.stats import StatsScreen

Source = replay.Cassette | str | os.PathLike[str]
"""A cassette, or the path of one."""
STEPS_AUTO = 5_000
"""Runs up to this many events are grouped into steps as soon as they are shown; a
longer one when the step tree is first asked for (``t``)."""


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
        # What is imported by now (thousands of modules) lives as long as the app: out of
        # the cyclic GC's sight, a full collection while the screen is built and the run
        # read no longer walks it all (~0.1 s before the first rows).
        gc.freeze()
        super().__init__()
        self.source = cassette
        """The run to show (the left one when comparing)."""
        self.other_source = other
        """The run to compare with, if any."""
        self.extra_flags = {seq: set(f) for seq, f in (flags or {}).items()}
        """Flags given from outside, by seq (drift findings, verdicts)."""
        self.notes = {seq: [_REDACTOR.text(x) for x in n] for seq, n in (notes or {}).items()}
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
        self.other_damage: str | None = None
        """What is wrong with ``other`` when it is damaged (only its readable part is compared)."""
        self._pairs: dict[int, replay.AlignedPair] = {}
        self.grouping = False
        """True while the run is being grouped into steps."""
        self.settled = False
        """True once loading is over: the run shown (or why not), and its steps grouped
        when that is done at load (tests and benchmarks wait for it)."""
        self.show_noise = False
        """True when differences in noise (ids, clock, random values) count as divergences."""
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

    def _read(self, source: Source, *, check_frames: bool = True) -> replay.Cassette:
        cassette = (source if isinstance(source, replay.Cassette)
                    else replay.read_cassette(source, strict=False, check_frames=check_frames))
        return _shown(cassette)

    def _say(self, label: str, done: float | None = None, total: float | None = None) -> None:
        self.call_from_thread(self.main.progress, label, done, total)

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        """Read, index and (with ``other``) align, reporting progress; then show.

        Alone, a packed cassette is shown from its index before its frames' checksums
        are checked (a pass over the whole file: 323 MB at a million events); they are
        checked right after, and a damaged file is then read again as ``read_cassette``
        reads it, and shown as damaged."""
        lazy = self.other_source is None and not isinstance(self.source, replay.Cassette)
        cassette = self._load(check_frames=not lazy)
        if cassette is None:
            return
        if lazy and isinstance(cassette.events, replay.EventLog):
            painted = threading.Event()  # check once the rows are on screen, not meanwhile
            self.call_from_thread(self.main.call_after_refresh, painted.set)
            painted.wait(10)
            try:
                cassette.events.check_frames()
            except replay.CassetteError:
                cassette = self._load(check_frames=True)
                if cassette is None:
                    return
        if len(cassette.events) <= STEPS_AUTO:
            self._group_steps(cassette)
        self.settled = True

    def _load(self, *, check_frames: bool) -> replay.Cassette | None:
        try:
            cassette = self._read(self.source, check_frames=check_frames)
        except (replay.CassetteError, OSError) as exc:
            self.load_error = str(exc)
            self.call_from_thread(self.main.show_failure, str(exc))
            self.settled = True
            return None
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
        damage = [d for d in (self._damage_of_left(cassette), self.other_damage) if d]
        self.call_from_thread(self.main.show_run, model, self.title_text, damage, self.start_at)
        return cassette

    def group_steps(self) -> None:
        """Group the run into agent steps now (a long run is grouped only when asked)."""
        if self.cassette is not None and not self.grouping:
            self.main.notice(f"grouping {len(self.cassette.events):,} events into steps…")
            self._steps_worker(self.cassette)

    @work(thread=True, exclusive=True, group="steps")
    def _steps_worker(self, cassette: replay.Cassette) -> None:
        self._group_steps(cassette)

    def _group_steps(self, cassette: replay.Cassette) -> None:
        """Steps and context diffs (``replay.steps``, ``replay.run_context_diffs``), then
        hand them to the main screen."""
        self.grouping = True
        try:
            steps = replay.steps(cassette)
            contexts = replay.run_context_diffs(cassette)
        except (replay.ReplayError, ValueError, TypeError, KeyError) as exc:
            self.call_from_thread(self.main.show_steps, None, {}, f"no steps: {exc}")
            return
        finally:
            self.grouping = False
        self.call_from_thread(self.main.show_steps, steps, contexts)

    def _damage_of_left(self, cassette: replay.Cassette | None = None) -> str | None:
        cassette = cassette or self.cassette
        if cassette is None or cassette.damage is None:
            return None
        return f"{self._short_name(cassette)}: {cassette.damage}"

    def _align(self, cassette: replay.Cassette, model: RunModel) -> None:
        assert self.other_source is not None
        self._say(f"aligning with {self._short_name(self.other_source)}…", 1, 2)
        try:
            other = self._read(self.other_source)
            result = replay.diff(cassette, other, allow_damaged=True)
        except (replay.CassetteError, OSError) as exc:
            self.diff_error = f"cannot read the other run: {exc}"
            return
        if other.damage is not None:
            self.other_damage = (f"{self._short_name(self.other_source)} (the other run): "
                                 f"{other.damage}")
        self.run_diff = result
        self._pairs = {p.left.seq: p for p in result.pairs if p.left is not None}
        model.set_flag(DIVERGENCE, self.divergent_seqs())

    def pair_of(self, seq: int) -> replay.AlignedPair | None:
        """The aligned pair of this run's event ``seq`` (None without a second run)."""
        return self._pairs.get(seq)

    def other_name(self) -> str:
        """The second run's file name."""
        return self._short_name(self.other_source) if self.other_source is not None else ""

    def divergent_seqs(self) -> list[int]:
        """Seqs of the left run's events that differ from their partner: noise aside,
        unless :attr:`show_noise`."""
        d = self.run_diff
        if d is None:
            return []
        return [p.left.seq for p in d.pairs if p.left is not None
                and (p.differs or (self.show_noise and p.is_noise))]

    def toggle_noise(self) -> bool:
        """Count noise as divergence, or stop; returns the new setting."""
        self.show_noise = not self.show_noise
        if self.model is not None:
            self.model.set_flag(DIVERGENCE, self.divergent_seqs())
        return self.show_noise

    def noise_line(self) -> str:
        """One line about noise: how many pairs differ only in it, per channel."""
        return noise_summary(self.run_diff, self.show_noise) if self.run_diff else ""

    def _title(self, cassette: replay.Cassette, model: RunModel) -> str:
        h = cassette.header
        name = f"[b]{escape(self._short_name(cassette))}[/b]  {len(model):,} events"
        if self.other_source is not None:  # the comparison first: it is what was asked
            name += f"  vs [b]{escape(self._short_name(self.other_source))}[/b]"
            diff = self.run_diff
            if diff is not None:
                name += f": {escape(first_divergence_text(diff))}"
            return name
        when = h.created.replace("T", " ")[:19]
        return f"{name}  ·  {escape(what_ran(h))}  ·  recorded {escape(when)}"

    # --- other screens ---------------------------------------------------------------

    def open_diff(self) -> None:
        """The side-by-side diff (needs ``other``)."""
        if self.run_diff is not None:
            damage = [d for d in (self._damage_of_left(), self.other_damage) if d]
            self.push_screen(DiffScreen(self.run_diff, show_noise=self.show_noise,
                                        first=first_divergence_text(self.run_diff),
                                        noise=self.noise_line(), damage=damage))
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


def what_ran(header: replay.Header) -> str:
    """What was recorded: the pytest test's node id, else the command line (cut)."""
    node = header.meta.get("pytest.nodeid") if isinstance(header.meta, dict) else None
    if isinstance(node, str) and node:
        return f"pytest {node}"
    return " ".join(header.argv)[:60]


def first_divergence_text(diff: replay.RunDiff) -> str:
    """``first divergence at #4 tool:lookup_order: response.total 4990.0 → 49.9``."""
    pair = diff.first_divergence
    if pair is None:
        return "same apart from noise" if diff.noise else "same"
    where = (f"#{pair.left.seq}" if pair.left is not None
             else f"right #{pair.right.seq}" if pair.right is not None else "?")
    text = f"first divergence at {where} {pair.channel}"
    changes = pair.significant()
    if changes:
        ch = changes[0]
        text += f": {ch.path} {change_text(ch, 24)}"
        if len(changes) > 1:
            text += f" (+{len(changes) - 1})"
    else:
        text += f": {pair.what()}"
    return text


def noise_summary(diff: replay.RunDiff, shown: bool) -> str:
    """``noise: 12 pairs differ only in ids, clock and random values (uuid 6, clock 5); z
    shows them``."""
    noise = diff.noise
    if not noise:
        return ""
    per: dict[str, int] = {}
    for p in noise:
        per[p.channel] = per.get(p.channel, 0) + 1
    channels = ", ".join(f"{c} {n}" for c, n in sorted(per.items(), key=lambda kv: -kv[1]))
    return (f"≈ {len(noise)} noise ({channels}): "
            + ("shown, z hides" if shown else "hidden, z shows"))


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
    events = cassette.events
    return dataclasses.replace(cassette, header=header,
                               events=events.map(_REDACTOR) if isinstance(events, replay.EventLog)
                               else tuple(_REDACTOR(e) for e in events))
