"""The main screen: timeline on the left, detail / conversation / stream on the right."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, Protocol, cast

from rich.console import RenderableType
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, ProgressBar, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

import replay
from tui.conversation import ConversationPane
from tui.detail import DetailPane, pair_section
from tui.keys import MAIN_KEYS
from tui.modals import ChannelFilter
from tui.model import DIVERGENCE, DRIFT, ERROR, GLYPHS, RunModel
from tui.payloads import is_model_call
from tui.render import damage_banner
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

FLAG_CYCLE: tuple[str | None, ...] = (None, ERROR, DIVERGENCE, DRIFT, "any")
"""What ``F`` steps through: all events, then only those with each flag."""
SPLIT_MIN, SPLIT_MAX = 25, 80
"""Bounds of the timeline's width, in percent of the screen (``<`` / ``>``)."""


def default_split(width: int) -> int:
    """The timeline's share of the width: more of a wide screen, half of a narrow one."""
    return 58 if width >= 110 else 55




class MainScreen(Screen[None]):
    """Timeline, detail tabs, search and filters."""

    BINDINGS: ClassVar[list[BindingType]] = MAIN_KEYS

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

    @property
    def replay_app(self) -> Host:
        """The app, seen through what this screen needs of it."""
        return cast(Host, self.app)

    @property
    def timeline(self) -> Timeline:
        """The timeline widget."""
        return self.query_one(Timeline)

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
        with Horizontal(id="panes", classes="hidden"):
            yield Timeline(id="timeline")
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
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#tabs", TabbedContent).can_focus = False
        for tabs in self.query("ContentTabs"):
            tabs.can_focus = False
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
        self.query_one("#panes").remove_class("hidden")
        index, missing = 0, ""
        if isinstance(start_at, str):
            hits = model.flagged(start_at)
            index = hits[0] if hits else 0
            missing = "" if hits else f"no {start_at} in this run"
        elif start_at is not None:
            index = model.index_of.get(start_at, 0)
            missing = "" if start_at in model.index_of else f"no event #{start_at}"
        self.timeline.set_model(model, index)
        self._shown = self.timeline.index
        self.timeline.focus()
        if missing:
            self.notice(missing)
        self.update_status()

    def show_failure(self, message: str) -> None:
        """Nothing could be read at all: say why, instead of crashing."""
        self.query_one("#loading").add_class("hidden")
        banner = self.query_one("#banner", Static)
        banner.update(Text(f"⚠ cannot open the cassette: {message}", style="bold"))
        banner.remove_class("hidden")
        self.query_one("#title", Static).update("agent-replay")

    # --- selection -------------------------------------------------------------------

    @on(Timeline.Highlighted)
    def _highlighted(self, event: Timeline.Highlighted) -> None:
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
        key = (tab, i, find, self.all_headers, self.replay_app.show_noise,
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
            pane.show_event(ev, flags, kids, notes, all_headers=self.all_headers,
                            compare=self._vs_other(ev))
        elif tab == "conversation":
            conv = self.query_one(ConversationPane)
            conv.find = find
            conv.show_event(ev)
        elif tab == "stream":
            self.query_one(StreamPane).load(ev)

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

    # --- navigation ------------------------------------------------------------------

    def action_move(self, delta: int) -> None:
        self.timeline.move(delta)

    def action_first(self) -> None:
        self.timeline.cursor = 0

    def action_last(self) -> None:
        self.timeline.cursor = len(self.model.rows) - 1

    def action_page(self, direction: int) -> None:
        self.timeline.move(direction * self.timeline.page)

    def _goto(self, i: int | None, what: str) -> None:
        if i is None:
            self.notice(f"no {what}")
        elif not self.timeline.select_index(i):
            self.notice(f"{what} is hidden by the filter")

    def action_jump(self, flag: str, direction: int) -> None:
        here = self.timeline.index
        start = here if here is not None else -1
        target = self.model.next_flag(flag, start, direction > 0)
        self._goto(target, f"{'next' if direction > 0 else 'previous'} {flag}")

    def action_model_call(self, direction: int) -> None:
        evs, rows = self.model.events, self.model.rows
        r = self.timeline.cursor + direction
        while 0 <= r < len(rows):
            if is_model_call(evs[rows[r]]):
                self.timeline.cursor = r
                return
            r += direction
        self.notice(f"no {'next' if direction > 0 else 'previous'} model call")

    # --- search ----------------------------------------------------------------------

    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        box.value = self.search_query
        box.remove_class("hidden")
        box.focus()

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        self._close_search_box()
        self.run_search(event.value.strip())

    def _close_search_box(self) -> None:
        self.query_one("#search", Input).add_class("hidden")
        self.timeline.focus()

    def run_search(self, query: str) -> None:
        """Search every payload for ``query`` in a worker; the cursor goes to the next hit."""
        self.search_query = query
        self.matches = []
        self.timeline.matches = set()
        self.timeline.clear_cache()
        if not query:
            self.update_status()
            return
        self.searching = True
        self.update_status()
        self._search(query)

    @work(thread=True, exclusive=True, group="search")
    def _search(self, query: str) -> None:
        worker = get_current_worker()
        found = self.model.search(query, stop=lambda: worker.is_cancelled)
        if not worker.is_cancelled:
            self.app.call_from_thread(self._search_done, query, found)

    def _search_done(self, query: str, found: list[int]) -> None:
        if query != self.search_query:
            return
        self.searching = False
        self.matches = found
        self.timeline.matches = set(found)
        self.timeline.clear_cache()
        here = self.timeline.index
        if here is not None and here in self.timeline.matches:
            self.update_status()
        else:
            self.action_match(1)

    def action_match(self, direction: int) -> None:
        if not self.search_query:
            self.notice("no search: press / first")
            return
        here = self.timeline.index
        target = self.model.next_in(self.matches, here if here is not None else -1,
                                    direction > 0)
        wrapped = False
        if target is None and self.matches:  # wrap around
            edge = -1 if direction > 0 else len(self.model)
            target = self.model.next_in(self.matches, edge, direction > 0)
            wrapped = target is not None and here is not None
        if target is None:
            self.notice(f"no match for {self.search_query!r}")
            return
        self.timeline.select_index(target)
        if wrapped:
            self.notice("search wrapped to the " + ("top" if direction > 0 else "bottom"))
        self.update_status()

    def action_clear_search(self) -> None:
        search = self.query_one("#search", Input)
        if not search.has_class("hidden"):
            self._close_search_box()
            return
        self.run_search("")

    # --- filters ---------------------------------------------------------------------

    def _refilter(self, channels: frozenset[str], flag: str | None) -> None:
        keep = self.timeline.index
        self.model.set_filter(channels, flag)
        self.timeline.reset_rows(keep)
        self._shown = self.timeline.index
        if not self.model.rows:
            self.notice("no event passes the filter (x clears it)")
        self.refresh_pane()
        self.update_status()

    def action_filter_channels(self) -> None:
        def done(chosen: frozenset[str] | None) -> None:
            if chosen is not None:
                self._refilter(chosen, self.model.flag_filter)

        self.app.push_screen(ChannelFilter(self.model.channels, self.model.channel_filter), done)

    def action_filter_flag(self) -> None:
        k = FLAG_CYCLE.index(self.model.flag_filter) if self.model.flag_filter in FLAG_CYCLE else 0
        self._refilter(self.model.channel_filter, FLAG_CYCLE[(k + 1) % len(FLAG_CYCLE)])

    def action_clear_filter(self) -> None:
        self._refilter(frozenset(), None)

    # --- right pane ------------------------------------------------------------------

    def action_tab(self, name: str) -> None:
        self.query_one("#tabs", TabbedContent).active = name
        self.refresh_pane()  # now, so keys typed right after act on the new tab

    def action_split(self, direction: int) -> None:
        """Move the split between the timeline and the right pane by 5% of the width."""
        now = self.split or default_split(self.size.width)
        self.split = max(SPLIT_MIN, min(SPLIT_MAX, now + 5 * direction))
        self.timeline.styles.width = f"{self.split}%"
        self.notice(f"timeline {self.split}% of the width (< narrower, > wider)")

    def on_resize(self, event: events.Resize) -> None:
        if not self.split:
            self.timeline.styles.width = f"{default_split(event.size.width)}%"

    def action_all_headers(self) -> None:
        self.all_headers = not self.all_headers
        self.refresh_pane()
        self.notice("every header shown" if self.all_headers
                    else "SDK boilerplate headers collapsed")

    def action_noise(self) -> None:
        host = self.replay_app
        if host.run_diff is None or not host.run_diff.noise:
            self.notice("no second run to compare with" if host.run_diff is None
                        else "the two runs differ in no noise")
            return
        shown = self.replay_app.toggle_noise()
        self._refilter(self.model.channel_filter, self.model.flag_filter)
        self.timeline.clear_cache()
        self.notice("noise differences count as divergences (v walks them)" if shown
                    else "noise differences hidden: v walks input and behaviour changes")

    def action_scroll_pane(self, direction: int) -> None:
        pane = {"detail": DetailPane, "conversation": ConversationPane}.get(self.active_tab)
        if pane is not None:
            self.query_one(pane).scroll_relative(y=direction * 5, animate=False)

    def _stream(self) -> StreamPane | None:
        if self.active_tab != "stream":
            self.notice("press 3 for the stream tab first")
            return None
        return self.query_one(StreamPane)

    def action_stream_toggle(self) -> None:
        if (pane := self._stream()) is not None:
            pane.toggle()

    def action_stream_step(self, delta: int) -> None:
        if (pane := self._stream()) is not None:
            pane.step(delta)

    def action_stream_speed(self, direction: int) -> None:
        if (pane := self._stream()) is not None:
            pane.faster(direction > 0)

    def action_stream_restart(self) -> None:
        if (pane := self._stream()) is not None:
            pane.restart()

    # --- other screens ---------------------------------------------------------------

    def action_compare(self) -> None:
        self.replay_app.open_diff()

    def action_stats(self) -> None:
        self.replay_app.open_stats()

    def action_help(self) -> None:
        self.replay_app.open_help()
