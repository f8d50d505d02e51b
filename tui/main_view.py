"""The main screen's state and display: the timeline or step tree on the left, the
detail / conversation / stream tabs on the right, the title, banner and status line.

:class:`MainView` shows; :class:`tui.main_screen.MainScreen` adds what the keys do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, cast

from rich.console import RenderableType
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, ProgressBar, Static, TabbedContent, TabPane

import replay
from tui.conversation import ConversationPane
from tui.detail import DetailPane, pair_section
from tui.model import DIVERGENCE, DRIFT, ERROR, GLYPHS, RunModel
from tui.render import damage_banner
from tui.stepinfo import context_section, step_section
from tui.steptree import StepTree
from tui.stream import StreamPane
from tui.timeline import Timeline


class Host(Protocol):
    """What the main screen asks of the app that shows it (``tui.app.ReplayApp``)."""

    notes: Mapping[int, Sequence[str]]
    show_noise: bool
    run_diff: replay.RunDiff | None

    def begin_load(self) -> None: ...
    def toggle_noise(self) -> bool: ...
    def pair_of(self, seq: int) -> replay.AlignedPair | None: ...
    def other_name(self) -> str: ...
    def noise_line(self) -> str: ...
    def open_diff(self) -> None: ...
    def open_stats(self) -> None: ...
    def open_help(self) -> None: ...
    def group_steps(self) -> None: ...

FLAG_CYCLE: tuple[str | None, ...] = (None, ERROR, DIVERGENCE, DRIFT, "any")
"""What ``F`` steps through: all events, then only those with each flag."""
SPLIT_MIN, SPLIT_MAX = 25, 80
"""Bounds of the timeline's width, in percent of the screen (``<`` / ``>``)."""


def default_split(width: int, tree: bool = False) -> int:
    """The timeline's share of the width: more of a wide screen, about half of a narrow
    one; the step tree (its waterfall and step costs) a little more of a wide one."""
    if width < 110:
        return 55
    return 66 if tree else 58




class MainView(Screen[None]):
    """Timeline or step tree, detail tabs, status: what is shown and how it is drawn."""

    def __init__(self) -> None:
        super().__init__()
        self.search_query = ""
        """The last search, "" when none."""
        self.matches: list[int] = []
        """Event indexes matching :attr:`search_query`, sorted."""
        self.searching = False
        """True while a search runs."""
        self.message = ""
        """The last notice shown in the status line (cleared on the next move)."""
        self._shown: int | None = None
        self._pane_shows: tuple[object, ...] = ()
        self.split = 0
        """Timeline width in percent of the screen (0: chosen by the screen's width)."""
        self.all_headers = False
        """True when the detail pane shows SDK boilerplate headers too."""
        self.tree_mode = False
        """True when the left shows the step tree instead of the flat timeline."""
        self.steps: list[replay.Step] | None = None
        """The run's agent steps once grouped (in the background, after the first paint)."""
        self.contexts: dict[int, replay.ContextDiff] = {}
        """What each model call read (its context diff), by seq, once computed."""
        self.steps_error = ""
        """Why the steps could not be grouped, if they could not."""
        self.want_tree = False
        """True when ``t`` was pressed before the steps were grouped."""

    @property
    def replay_app(self) -> Host:
        """The app, seen through what this screen needs of it."""
        return cast(Host, self.app)

    @property
    def timeline(self) -> Timeline:
        """The list on the left: the flat timeline, or the step tree (``t``)."""
        if self.tree_mode:
            return self.query_one("#steptree", StepTree)
        return self.query_one("#timeline", Timeline)

    @property
    def lists(self) -> tuple[Timeline, StepTree]:
        """Both lists (filters, search hits and the split apply to both)."""
        return self.query_one("#timeline", Timeline), self.query_one("#steptree", StepTree)

    @property
    def model(self) -> RunModel:
        """The run shown."""
        return self.timeline.model

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield Static(id="banner", classes="hidden")
        with Vertical(id="loading"):
            yield Label("Loading…", id="loading-label")
            yield ProgressBar(id="loading-bar", show_eta=False)
        with Horizontal(id="panes"):  # shown at once, empty: no restyle of it all when loaded
            yield Timeline(id="timeline")
            yield StepTree(id="steptree", classes="hidden")
            with TabbedContent(id="tabs", initial="detail"):
                with TabPane("1 Detail", id="detail"):
                    yield DetailPane(id="detail-pane")
                with TabPane("2 Conversation", id="conversation"):
                    yield ConversationPane(id="conversation-pane")
                with TabPane("3 Stream", id="stream"):
                    yield StreamPane(id="stream-pane")
        yield Input(placeholder="search payloads (Enter: find, Esc: cancel)", id="search",
                    classes="hidden")
        yield Static(id="status")
        # The footer (one widget per key, each styled) is mounted once the run shows:
        # laid out during loading, it takes CPU from the reader and delays the rows.

    def on_mount(self) -> None:
        self.query_one("#tabs", TabbedContent).can_focus = False
        for tabs in self.query("ContentTabs"):
            tabs.can_focus = False
        # Focused now, so the footer lays out its keys once, not again when the run shows.
        self.query_one("#timeline", Timeline).focus()
        self.replay_app.begin_load()

    # --- loading ---------------------------------------------------------------------

    def progress(self, label: str, done: float | None = None, total: float | None = None) -> None:
        """Show a loading stage (call from the UI thread)."""
        self.query_one("#loading-label", Label).update(label)
        self.query_one("#loading-bar", ProgressBar).update(total=total, progress=done or 0)

    def show_run(self, model: RunModel, title: str, damage: Sequence[str],
                 start_at: int | str | None) -> None:
        """The run is loaded: show it, the cursor on ``start_at`` (a seq or a flag name).

        ``damage``: one sentence per damaged cassette (this run's, the other run's).
        """
        self.query_one("#title", Static).update(Text.from_markup(title))
        banner = self.query_one("#banner", Static)
        if damage:
            banner.update(damage_banner(damage))
            banner.remove_class("hidden")
        self.query_one("#loading").add_class("hidden")
        index, missing = 0, ""
        if isinstance(start_at, str):
            hits = model.flagged(start_at)
            index = hits[0] if hits else 0
            missing = "" if hits else f"no {start_at} in this run"
        elif start_at is not None:
            index = model.index_of.get(start_at, 0)
            missing = "" if start_at in model.index_of else f"no event #{start_at}"
        self.timeline.set_model(model, index)
        self._mount_footer()
        self._shown = self.timeline.index
        self.timeline.focus()
        if missing:
            self.notice(missing)
        self.update_status()

    def show_failure(self, message: str) -> None:
        """Nothing could be read at all: say why, instead of crashing."""
        self.query_one("#loading").add_class("hidden")
        self.query_one("#panes").add_class("hidden")
        banner = self.query_one("#banner", Static)
        banner.update(Text(f"⚠ cannot open the cassette: {message}", style="bold"))
        banner.remove_class("hidden")
        self.query_one("#title", Static).update("agent-replay")
        self._mount_footer()

    def _mount_footer(self) -> None:
        """Mount the footer after the next frame (the one that shows the run)."""
        if not self.query(Footer):
            self.call_after_refresh(self._add_footer)

    async def _add_footer(self) -> None:
        if not self.query(Footer):
            await self.mount(Footer())
            self.refresh_bindings()  # the footer lays out its keys when the bindings change

    # --- selection -------------------------------------------------------------------

    @on(Timeline.Highlighted)
    def _highlighted(self, event: Timeline.Highlighted) -> None:
        if event.control is not self.timeline:
            return  # the hidden list followed a filter
        self._shown = event.index
        self.refresh_pane()
        self.update_status()

    def on_key(self, event: events.Key) -> None:
        """Any key is a new action: the last one's notice is stale (the action may say
        something new; keys bubble here before the bindings run)."""
        if self.message:
            self.message = ""
            self.update_status()

    def on_click(self) -> None:
        if self.message:
            self.message = ""
            self.update_status()

    @on(TabbedContent.TabActivated)
    def _tab_changed(self) -> None:
        self.refresh_pane()
        self.timeline.focus()

    @property
    def active_tab(self) -> str:
        """``detail``, ``conversation`` or ``stream``."""
        return self.query_one("#tabs", TabbedContent).active

    def refresh_pane(self) -> None:
        """Show the selected event in the visible tab (the others update when shown)."""
        tl = self.timeline
        ev, i = tl.event, tl.index
        tab = self.active_tab
        find = self.search_query if i is not None and i in tl.matches else ""
        step = tl.step if isinstance(tl, StepTree) and tl.on_step_row else None
        key = (tab, i, find, self.all_headers, self.replay_app.show_noise, step is not None,
               len(self.contexts),
               frozenset(self.model.flags_of(i)) if i is not None else None)
        if key == self._pane_shows:
            return
        self._pane_shows = key
        if tab == "detail":
            flags = self.model.flags_of(i) if i is not None else set()
            kids = self.model.children.get(ev.seq, 0) if ev is not None else 0
            notes = self.replay_app.notes.get(ev.seq, []) if ev is not None else []
            pane = self.query_one(DetailPane)
            pane.find = find
            top, context = self._step_sections(ev)
            pane.show_event(ev, flags, kids, notes, all_headers=self.all_headers,
                            compare=top + self._vs_other(ev), extra=context)
        elif tab == "conversation":
            conv = self.query_one(ConversationPane)
            conv.find = find
            conv.show_event(ev)
        elif tab == "stream":
            self.query_one(StreamPane).load(ev)

    def _step_sections(self, ev: replay.Event | None) -> tuple[list[RenderableType],
                                                               list[RenderableType]]:
        """(the step under the tree's cursor, shown first; what the model call read)."""
        tl = self.timeline
        top: list[RenderableType] = []
        if isinstance(tl, StepTree) and tl.on_step_row and tl.step is not None:
            top = step_section(tl.step)
        ctx = self.contexts.get(ev.seq) if ev is not None else None
        return top, context_section(ctx) if ctx is not None else []

    def _vs_other(self, ev: replay.Event | None) -> list[RenderableType]:
        host = self.replay_app
        pair = host.pair_of(ev.seq) if ev is not None else None
        if pair is None or not (pair.differs or (host.show_noise and pair.is_noise)):
            return []
        return pair_section(pair, host.other_name(), host.show_noise)

    def update_status(self) -> None:
        """Rewrite the status line: position, filter, search, flags, notices."""
        m, tl = self.model, self.timeline
        ev = tl.event
        here = f"#{ev.seq}  " if ev is not None else ""
        if isinstance(tl, StepTree):
            step = tl.step
            parts = [f"{here}step {step.index if step else '-'}/{len(tl.steps) - 1}"]
        else:
            parts = [f"{here}{tl.cursor + 1 if m.rows else 0}/{len(m.rows)}"]
        if self.message:
            parts.append(self.message)
        if m.filtered:
            what = []
            if m.channel_filter:
                what.append(",".join(sorted(m.channel_filter)))
            if m.flag_filter:
                what.append(f"flag={m.flag_filter}")
            parts.append(f"filter {' '.join(what)} ({len(m)} events in all)")
        if self.searching:
            parts.append(f"searching {self.search_query!r}…")
        elif self.search_query:
            i = tl.index
            pos = (self.matches.index(i) + 1) if i in self.matches else "-"
            parts.append(f"/{self.search_query}: {pos}/{len(self.matches)} matches")
        counts = m.flag_counts()
        flags = "  ".join(f"{GLYPHS.get(f, '*')} {n} {f}" for f, n in sorted(counts.items()))
        if flags:
            parts.append(flags)
        noise = self.replay_app.noise_line()
        if noise:
            parts.append(noise)
        self.query_one("#status", Static).update("  │  ".join(parts), layout=False)

    def notice(self, text: str) -> None:
        """Say something in the status line until the next key."""
        self.message = text
        self.update_status()

    def on_resize(self, event: events.Resize) -> None:
        if not self.split:
            flat, tree = self.lists
            flat.styles.width = f"{default_split(event.size.width)}%"
            tree.styles.width = f"{default_split(event.size.width, tree=True)}%"

    def show_steps(self, steps: list[replay.Step] | None,
                   contexts: dict[int, replay.ContextDiff], error: str = "") -> None:
        """The steps are grouped (call from the UI thread): fill the tree."""
        self.steps, self.contexts, self.steps_error = steps, contexts, error
        if steps is not None:
            self.lists[1].set_model(self.model, self.timeline.index or 0)
            self.lists[1].set_steps(steps)
        self._pane_shows = ()
        self.refresh_pane()
        if self.want_tree and steps is not None:
            self.want_tree = False
            self.action_tree()

    def action_tree(self) -> None:
        if self.steps is None:
            if self.steps_error:
                self.notice(self.steps_error)
            else:
                self.want_tree = True  # shown when the steps arrive
                self.replay_app.group_steps()
                self.notice("grouping the run into steps…")
            return
        here = self.timeline.index
        self.tree_mode = not self.tree_mode
        flat, tree = self.lists
        flat.set_class(self.tree_mode, "hidden")
        tree.set_class(not self.tree_mode, "hidden")
        tl = self.timeline
        if here is not None and not tl.select_index(here):
            tl.reset_rows(here)
        tl.focus()
        self._pane_shows = ()
        self.refresh_pane()
        self.update_status()
