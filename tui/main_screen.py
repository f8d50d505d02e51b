"""The main screen: timeline on the left, detail / conversation / stream on the right."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, Protocol, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, ProgressBar, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from tui.conversation import ConversationPane
from tui.detail import DetailPane
from tui.modals import ChannelFilter
from tui.model import DIVERGENCE, DRIFT, ERROR, GLYPHS, RunModel
from tui.payloads import is_model_call
from tui.stream import StreamPane
from tui.timeline import Timeline


class Host(Protocol):
    """What the main screen asks of the app that shows it (``tui.app.ReplayApp``)."""

    notes: Mapping[int, Sequence[str]]

    def begin_load(self) -> None: ...
    def open_diff(self) -> None: ...
    def open_stats(self) -> None: ...
    def open_help(self) -> None: ...

FLAG_CYCLE: tuple[str | None, ...] = (None, ERROR, DIVERGENCE, DRIFT, "any")
"""What ``F`` steps through: all events, then only those with each flag."""


class MainScreen(Screen[None]):
    """Timeline, detail tabs, search and filters."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,down", "move(1)", "Next event", show=False),
        Binding("k,up", "move(-1)", "Previous event", show=False),
        Binding("g,home", "first", "First event", show=False),
        Binding("G,end", "last", "Last event", show=False),
        Binding("pagedown,ctrl+f", "page(1)", "Page down", show=False),
        Binding("pageup,ctrl+b", "page(-1)", "Page up", show=False),
        Binding("slash", "search", "Search"),
        Binding("n", "match(1)", "Next match"),
        Binding("N", "match(-1)", "Previous match", show=False),
        Binding("escape", "clear_search", "Clear search", show=False),
        Binding("f", "filter_channels", "Channels"),
        Binding("F", "filter_flag", "Flag filter"),
        Binding("x", "clear_filter", "Clear filters", show=False),
        Binding("e", "jump('error', 1)", "Next error"),
        Binding("E", "jump('error', -1)", "Previous error", show=False),
        Binding("v", "jump('divergence', 1)", "Next divergence", show=False),
        Binding("V", "jump('divergence', -1)", "Previous divergence", show=False),
        Binding("d", "jump('drift', 1)", "Next drift", show=False),
        Binding("D", "jump('drift', -1)", "Previous drift", show=False),
        Binding("m", "model_call(1)", "Next model call", show=False),
        Binding("M", "model_call(-1)", "Previous model call", show=False),
        Binding("1", "tab('detail')", "Detail tab", show=False),
        Binding("2", "tab('conversation')", "Conversation tab", show=False),
        Binding("3", "tab('stream')", "Stream tab", show=False),
        Binding("J", "scroll_pane(1)", "Scroll right pane down", show=False),
        Binding("K", "scroll_pane(-1)", "Scroll right pane up", show=False),
        Binding("space", "stream_toggle", "Stream play / pause", show=False),
        Binding("full_stop", "stream_step(1)", "Stream: next chunk", show=False),
        Binding("comma", "stream_step(-1)", "Stream: previous chunk", show=False),
        Binding("plus", "stream_speed(1)", "Stream faster", show=False),
        Binding("minus", "stream_speed(-1)", "Stream slower", show=False),
        Binding("0", "stream_restart", "Stream from the start", show=False),
        Binding("c", "compare", "Diff"),
        Binding("s", "stats", "Stats"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "app.quit", "Quit"),
    ]

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
        self._pane_shows: tuple[str, int | None] = ("", None)

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

    def show_run(self, model: RunModel, title: str, damage: str | None,
                 start_at: int | str | None) -> None:
        """The run is loaded: show it, the cursor on ``start_at`` (a seq or a flag name)."""
        self.query_one("#title", Static).update(Text.from_markup(title))
        banner = self.query_one("#banner", Static)
        if damage:
            banner.update(Text(f"⚠ damaged cassette: {damage}\nShowing the {len(model)} "
                               "events that could be read before the damage.", style="bold"))
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
        if event.index != self._shown:
            self.message = ""
        self._shown = event.index
        self.refresh_pane()
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
        if (tab, i) == self._pane_shows:
            return
        self._pane_shows = (tab, i)
        if tab == "detail":
            flags = self.model.flags_of(i) if i is not None else set()
            kids = self.model.children.get(ev.seq, 0) if ev is not None else 0
            notes = self.replay_app.notes.get(ev.seq, []) if ev is not None else []
            self.query_one(DetailPane).show_event(ev, flags, kids, notes)
        elif tab == "conversation":
            self.query_one(ConversationPane).show_event(ev)
        elif tab == "stream":
            self.query_one(StreamPane).load(ev)

    def update_status(self) -> None:
        """Rewrite the status line: position, filter, search, flags, notices."""
        m, tl = self.model, self.timeline
        parts = [f"{tl.cursor + 1 if m.rows else 0}/{len(m.rows)}"]
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
        if self.message:
            parts.append(self.message)
        self.query_one("#status", Static).update("  │  ".join(parts), layout=False)

    def notice(self, text: str) -> None:
        """Say something in the status line until the cursor moves."""
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
        if target is None and self.matches:  # wrap around
            edge = -1 if direction > 0 else len(self.model)
            target = self.model.next_in(self.matches, edge, direction > 0)
        if target is None:
            self.notice(f"no match for {self.search_query!r}")
        else:
            self.timeline.select_index(target)
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
