"""The main screen: what its keys do (moving, jumps, search, filters, panes, steps,
stream playback); what it shows is :class:`tui.main_view.MainView`."""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.binding import BindingType
from textual.widgets import Input, TabbedContent
from textual.worker import get_current_worker

from tui.conversation import ConversationPane
from tui.detail import DetailPane
from tui.keys import MAIN_KEYS
from tui.main_view import FLAG_CYCLE, SPLIT_MAX, SPLIT_MIN, MainView, default_split
from tui.modals import ChannelFilter
from tui.payloads import is_model_call
from tui.steptree import StepTree
from tui.stream import StreamPane

__all__ = ["FLAG_CYCLE", "MainScreen"]


class MainScreen(MainView):
    """Timeline, detail tabs, search and filters."""

    BINDINGS: ClassVar[list[BindingType]] = MAIN_KEYS

    # --- navigation ------------------------------------------------------------------

    def action_move(self, delta: int) -> None:
        self.timeline.move(delta)

    def action_first(self) -> None:
        self.timeline.cursor = 0

    def action_last(self) -> None:
        self.timeline.cursor = self.timeline.row_count - 1

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
        here = self.timeline.index
        r = self.model.nearest_row(here) if here is not None else 0
        r += direction if here is not None and self.model.row_of(here) is not None else (
            0 if direction > 0 else -1)
        while 0 <= r < len(rows):
            if is_model_call(evs[rows[r]]):
                self.timeline.select_index(rows[r])
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
        for tl in self.lists:
            tl.matches = set()
            tl.clear_cache()
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
        for tl in self.lists:
            tl.matches = set(found)
            tl.clear_cache()
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
        flat, tree = self.lists
        flat.reset_rows(keep)
        if self.steps is not None:
            tree.refilter(keep)
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
        now = self.split or default_split(self.size.width, self.tree_mode)
        self.split = max(SPLIT_MIN, min(SPLIT_MAX, now + 5 * direction))
        for tl in self.lists:
            tl.styles.width = f"{self.split}%"
        self.notice(f"timeline {self.split}% of the width (< narrower, > wider)")

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
        for tl in self.lists:
            tl.clear_cache()
        self.notice("noise differences count as divergences (v walks them)" if shown
                    else "noise differences hidden: v walks input and behaviour changes")

    # --- steps -----------------------------------------------------------------------

    def action_step_fold(self, how: str) -> None:
        tl = self.timeline
        if not isinstance(tl, StepTree):
            self.notice("press t for the step tree first")
        elif how in ("open", "close"):
            tl.toggle(how == "open")
        elif how in ("all", "none"):
            tl.set_all(how == "all")
        else:
            tl.toggle()

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
