"""Pilot tests: drive the real app with keys and check its state."""

from __future__ import annotations

import contextlib
import pathlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Footer, Input, SelectionList, Static

import replay
from tests import tui_samples as samples
from tui.app import ReplayApp
from tui.conversation import ConversationPane
from tui.diff_screen import DiffScreen
from tui.main_screen import MainScreen
from tui.modals import ChannelFilter, HelpScreen
from tui.model import DIVERGENCE, DRIFT, ERROR, auto_flags
from tui.rendered import RenderedView
from tui.stats import StatsScreen
from tui.stream import StreamPane

SIZE = (120, 36)


def text_of(widget: Static, width: int = 100) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(widget.content)  # type: ignore[arg-type]
    return console.export_text()


@contextlib.asynccontextmanager
async def running(app: ReplayApp) -> AsyncIterator[Pilot[None]]:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        yield pilot


async def settle(pilot: Pilot[Any]) -> None:
    """Wait for loading (it starts after the first paint) and every worker, then a frame."""
    await samples.until_settled(pilot)


async def until(pilot: Pilot[Any], done: Callable[[], bool], timeout: float = 30.0) -> None:
    """Let the app run until ``done()`` holds (fails after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out waiting for the app"
        await pilot.pause(0.02)


async def press(pilot: Pilot[Any], *keys: str) -> None:
    await pilot.press(*keys)
    await settle(pilot)


def lines_of(view: RenderedView) -> str:
    return "\n".join(view.lines)


def main(app: ReplayApp) -> MainScreen:
    return app.main


def seq(app: ReplayApp) -> int | None:
    ev = app.main.timeline.event
    return None if ev is None else ev.seq


def two_runs() -> ReplayApp:
    other = replay.Cassette("/srv/runs/replayed.replay", samples.HEADER,
                            tuple(samples.diverged_run()))
    return ReplayApp(samples.agent_cassette(), other)


async def test_loads_a_file_in_a_worker_and_shows_every_event(tmp_path: pathlib.Path) -> None:
    path = samples.write(tmp_path / "trip.replay", samples.agent_run())
    app = ReplayApp(path)
    async with running(app) as pilot:
        assert app.model is not None and len(app.model) == 21
        assert main(app).query_one("#loading").has_class("hidden")
        assert main(app).query_one("#banner").has_class("hidden")
        assert "trip.replay" in text_of(main(app).query_one("#title", Static))
        assert seq(app) == 0 and main(app).timeline.has_focus
        await press(pilot, "j")
        assert "#1 clock" in lines_of(main(app).query_one("#detail-pane", RenderedView))


async def test_cursor_keys_move_through_the_timeline() -> None:
    app = ReplayApp(replay.Cassette("big.replay", samples.HEADER,
                                    tuple(samples.big_run(200))))
    async with running(app) as pilot:
        tl = main(app).timeline
        await press(pilot, "j", "j", "down")
        assert tl.cursor == 3
        await press(pilot, "k", "up")
        assert tl.cursor == 1
        await press(pilot, "G")
        assert tl.cursor == 199 and tl.scroll_y > 150
        await press(pilot, "g")
        assert tl.cursor == 0 and tl.scroll_y == 0
        await press(pilot, "end")
        assert tl.cursor == 199
        await press(pilot, "home")
        assert tl.cursor == 0
        await press(pilot, "pagedown")
        assert tl.cursor == tl.page > 5
        await press(pilot, "pageup")
        assert tl.cursor == 0
        await press(pilot, "ctrl+f", "ctrl+b", "k")
        assert tl.cursor == 0
        await pilot.click("#timeline", offset=(5, 4))
        await settle(pilot)
        assert tl.cursor == 4


async def test_search_finds_payload_text_and_n_N_cycle_through_hits() -> None:
    app = ReplayApp(samples.agent_cassette())
    async with running(app) as pilot:
        screen = main(app)
        await press(pilot, "slash")
        box = screen.query_one("#search", Input)
        assert box.has_focus and not box.has_class("hidden")
        await press(pilot, *"declined", "enter")
        assert box.has_class("hidden") and screen.timeline.has_focus
        assert screen.matches == [8, 11]
        assert seq(app) == 8
        assert "1/2 matches" in text_of(screen.query_one("#status", Static), 200)
        await press(pilot, "n")
        assert seq(app) == 11
        await press(pilot, "n")
        assert seq(app) == 8  # wraps
        await press(pilot, "N")
        assert seq(app) == 11
        await press(pilot, "escape")
        assert screen.search_query == "" and screen.matches == []
        await press(pilot, "slash", *"nothing-like-this", "enter")
        assert screen.matches == [] and "no match" in screen.message
        await press(pilot, "slash", "x", "escape")
        assert screen.query_one("#search", Input).has_class("hidden")


async def test_channel_filter_and_flag_filter() -> None:
    app = ReplayApp(samples.agent_cassette(), flags={5: {DRIFT}})
    async with running(app) as pilot:
        screen = main(app)
        await press(pilot, "j", "j", "j")
        await press(pilot, "f")
        assert isinstance(app.screen, ChannelFilter)
        sel = app.screen.query_one(SelectionList)
        sel.select("http")
        await press(pilot, "enter")
        assert isinstance(app.screen, MainScreen)
        assert [screen.model.events[i].seq for i in screen.model.rows] == [3, 7, 10, 11, 12]
        assert seq(app) == 3  # the selected event stayed selected
        assert "filter http" in text_of(screen.query_one("#status", Static), 200)
        await press(pilot, "f", "a", "enter")  # a: all / none; none picked is no filter
        assert screen.model.channel_filter == frozenset() and len(screen.model.rows) == 21
        await press(pilot, "f", "a", "enter")
        assert screen.model.channel_filter == frozenset(screen.model.channels)
        await press(pilot, "f", "escape")
        assert isinstance(app.screen, MainScreen)
        await press(pilot, "x")
        assert not screen.model.filtered and len(screen.model.rows) == 21
        await press(pilot, "F")
        assert screen.model.flag_filter == ERROR and list(screen.model.rows) == [8, 10]
        await press(pilot, "F")
        assert screen.model.flag_filter == DIVERGENCE and list(screen.model.rows) == []
        assert "no event passes" in screen.message
        await press(pilot, "F", "F")
        assert screen.model.flag_filter == "any" and list(screen.model.rows) == [5, 8, 10]
        await press(pilot, "F")
        assert screen.model.flag_filter is None


async def test_jump_to_errors_divergences_drift_and_model_calls() -> None:
    app = ReplayApp(samples.agent_cassette(), flags={5: {DRIFT}, 12: {DRIFT, DIVERGENCE}})
    async with running(app) as pilot:
        await press(pilot, "e")
        assert seq(app) == 8
        await press(pilot, "e")
        assert seq(app) == 10
        await press(pilot, "e")
        assert seq(app) == 10 and main(app).message == "no next error"
        await press(pilot, "E")
        assert seq(app) == 8
        await press(pilot, "v")
        assert seq(app) == 12
        await press(pilot, "V")
        assert seq(app) == 12 and "no previous divergence" in main(app).message
        await press(pilot, "D")
        assert seq(app) == 5
        await press(pilot, "d")
        assert seq(app) == 12
        await press(pilot, "g", "m", "m")
        assert seq(app) == 7
        await press(pilot, "M")
        assert seq(app) == 3
        await press(pilot, "M")
        assert seq(app) == 3 and "no previous model call" in main(app).message


async def test_start_at_an_event_or_at_the_first_flag() -> None:
    app = ReplayApp(samples.agent_cassette(), start_at=12)
    async with running(app):
        assert seq(app) == 12
    app = ReplayApp(samples.agent_cassette(), flags={9: {DRIFT}},
                    notes={9: ["sleep length changed"]}, start_at="drift")
    async with running(app):
        assert seq(app) == 9
        assert "sleep length changed" in lines_of(main(app).query_one("#detail-pane", RenderedView))
    app = ReplayApp(samples.agent_cassette(), start_at="divergence")
    async with running(app):
        assert seq(app) == 0 and main(app).message == "no divergence in this run"


async def test_tabs_show_detail_conversation_and_stream() -> None:
    app = ReplayApp(samples.agent_cassette(), start_at=7)
    async with running(app) as pilot:
        screen = main(app)
        await press(pilot, "2")
        assert screen.active_tab == "conversation"
        conv = lines_of(screen.query_one("#conversation-pane", RenderedView))
        assert "[1] system" in conv and "answer at this step" in conv
        assert "Booking the 99 EUR flight." in conv and "→ book(" in conv
        await press(pilot, "j")  # a tool event: no conversation
        assert "not a model call" in lines_of(screen.query_one("#conversation-pane", RenderedView))
        pane = screen.query_one(ConversationPane)
        await press(pilot, "k", "K")
        assert pane.scroll_y == 0
        await press(pilot, "1", "J")
        assert screen.active_tab == "detail"
        assert screen.query_one("#detail-pane").scroll_y > 0
        await press(pilot, "K")
        assert screen.query_one("#detail-pane").scroll_y == 0
        await press(pilot, "3")
        assert screen.active_tab == "stream"
        assert "no streamed response" in text_of(screen.query_one("#stream-status", Static))


async def test_stream_playback_step_pause_speed_and_play_to_the_end() -> None:
    app = ReplayApp(samples.agent_cassette(), start_at=11)
    async with running(app) as pilot:
        screen = main(app)
        await press(pilot, "space")
        assert "press 3" in screen.message  # stream keys need the stream tab
        await press(pilot, "3")
        pane = screen.query_one(StreamPane)
        assert pane.count == 13 and pane.position == 0 and not pane.playing
        await press(pilot, "full_stop", "full_stop", "full_stop")
        assert pane.position == 3
        assert "The booking" in lines_of(screen.query_one("#stream-text", RenderedView))
        await press(pilot, "comma")
        assert pane.position == 2
        await press(pilot, "plus", "plus")
        assert pane.speed == 5.0
        await press(pilot, "minus")
        assert pane.speed == 2.0
        await press(pilot, "minus", "minus")
        assert pane.speed == 1.0
        # Play and pause without racing the player's timer: at a hundredth of the
        # recorded pace the next chunk is seconds away, however slow this machine is.
        pane.speed = 0.01
        await press(pilot, "space")
        assert pane.playing
        await press(pilot, "space")
        assert not pane.playing
        paused_at = pane.position
        await pilot.pause(0.1)
        assert pane.position == paused_at
        await press(pilot, "plus", "plus", "plus", "plus", "plus")
        assert pane.speed == 100.0
        await press(pilot, "space")
        await until(pilot, lambda: not pane.playing)  # a condition, not a fixed sleep
        assert pane.position == 13 and not pane.playing
        text = lines_of(screen.query_one("#stream-text", RenderedView))
        assert "a later flight." in text and text.startswith("The booking failed")
        await press(pilot, "0")
        assert pane.position == 0
        await press(pilot, "j")  # another event: the player follows the cursor
        assert pane.count == 0


async def test_help_lists_every_binding() -> None:
    app = ReplayApp(samples.agent_cassette())
    async with running(app) as pilot:
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = "\n".join(text_of(w, 120) for w in app.screen.query(".help-group").results(Static))
        for b in [*MainScreen.BINDINGS, *DiffScreen.BINDINGS, *StatsScreen.BINDINGS]:
            assert b.description in text, b.description  # type: ignore[union-attr]
        await press(pilot, "j", "k", "escape")
        assert isinstance(app.screen, MainScreen)


async def test_stats_screen() -> None:
    app = ReplayApp(samples.agent_cassette())
    async with running(app) as pilot:
        await press(pilot, "s")
        assert isinstance(app.screen, StatsScreen)
        await settle(pilot)
        st = app.screen.stats
        assert st is not None and st.events == 21
        assert st.models["gpt-4o-mini-2024-07-18"].calls == 2
        await press(pilot, "j", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        await press(pilot, "escape", "escape")
        assert isinstance(app.screen, MainScreen)


async def test_diff_screen_aligns_two_runs() -> None:
    app = two_runs()
    async with running(app) as pilot:
        model = main(app).model
        assert model.flagged(DIVERGENCE)[:2] == [4, 7]  # then whatever the clocks did
        assert "first divergence at #4" in text_of(main(app).query_one("#title", Static), 200)
        await press(pilot, "v")
        assert seq(app) == 4
        await press(pilot, "c")
        screen = app.screen
        assert isinstance(screen, DiffScreen)
        table = screen.table
        assert table.cursor == 4
        body = text_of(screen.query_one("#pair-body", Static), 120)
        assert "FIRST DIVERGENCE" in body and "response[1].price" in body
        await press(pilot, "n")
        assert table.cursor == 7
        assert "Booking the 129 EUR flight." in text_of(screen.query_one("#pair-body", Static),
                                                         120)
        await press(pilot, "N", "N")
        assert table.cursor == 4
        await press(pilot, "G")
        assert table.cursor == len(table.pairs) - 1
        await press(pilot, "g", "j", "k", "pagedown", "pageup", "J", "K")
        assert table.cursor == 0
        await press(pilot, "f")
        assert table.cursor == 4
        await press(pilot, "escape")
        assert isinstance(app.screen, MainScreen)


async def test_diff_needs_a_second_run() -> None:
    app = ReplayApp(samples.agent_cassette())
    async with running(app) as pilot:
        await press(pilot, "c")
        assert isinstance(app.screen, MainScreen) and "no second run" in main(app).message


async def test_damaged_cassette_shows_a_banner_and_what_could_be_read(
        tmp_path: pathlib.Path) -> None:
    path = samples.damaged(tmp_path / "cut.replay", samples.agent_run())
    app = ReplayApp(path)
    async with running(app) as pilot:
        banner = main(app).query_one("#banner", Static)
        assert not banner.has_class("hidden")
        text = text_of(banner, 200)
        assert "damaged cassette" in text and "truncated" in text
        assert app.model is not None and 0 < len(app.model) < 21
        await press(pilot, "G")
        assert seq(app) == len(app.model) - 1


async def test_unreadable_file_says_why_instead_of_crashing(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "junk.replay"
    path.write_bytes(b"this is not a cassette at all" * 10)
    app = ReplayApp(path)
    async with running(app) as pilot:
        banner = main(app).query_one("#banner", Static)
        assert "cannot open the cassette" in text_of(banner, 200)
        assert app.load_error is not None
        await press(pilot, "j", "s", "c", "slash", "escape")  # nothing breaks
        assert isinstance(app.screen, MainScreen)


async def test_quit() -> None:
    app = ReplayApp(samples.agent_cassette())
    async with running(app) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_remaining_keys_of_the_other_screens() -> None:
    app = two_runs()
    async with running(app) as pilot:
        for back in ("escape", "q", "c"):
            await press(pilot, "c")
            assert isinstance(app.screen, DiffScreen)
            await press(pilot, back)
            assert isinstance(app.screen, MainScreen), back
        await press(pilot, "c", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        await press(pilot, "escape")
        screen = app.screen
        assert isinstance(screen, DiffScreen)
        await pilot.click("#pairs", offset=(3, 2))
        await settle(pilot)
        assert screen.table.cursor == 2
        await press(pilot, "escape")
        for back in ("escape", "q", "s"):
            await press(pilot, "s")
            assert isinstance(app.screen, StatsScreen)
            await press(pilot, "j", "k", back)
            assert isinstance(app.screen, MainScreen), back
        await press(pilot, "f")
        sel = app.screen.query_one(SelectionList)
        sel.highlighted = 1  # http (channels are listed sorted)
        await press(pilot, "space", "enter")
        assert main(app).model.channel_filter == frozenset({"http"})
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert not app.is_running


async def test_a_hundred_thousand_events_stay_virtual() -> None:
    cassette = replay.Cassette("big.replay", samples.HEADER,
                               tuple(samples.big_run(100_000)))
    app = ReplayApp(cassette)
    async with running(app) as pilot:
        tl = main(app).timeline
        await press(pilot, "G")
        assert seq(app) == 99_999
        await press(pilot, "pageup", "E")
        model = main(app).model
        assert tl.index is not None and ERROR in model.flags_of(tl.index)
        await press(pilot, "F")
        assert len(model.rows) == 2 * 4762  # a raise and a 429 in each of 4,762 laps
        await press(pilot, "x", "g", "j")
        assert seq(app) == 1
        # only lines that were on screen were ever built
        assert len(tl._cache) < 4 * SIZE[1]


async def test_a_packed_run_opens_from_its_index_and_scrolls_to_its_end(
        tmp_path: pathlib.Path) -> None:
    """The timeline reads a packed cassette's index, and decodes only the rows it draws
    (a million events open this way): the last screen shows the last events, in order."""
    evs = samples.big_run(20_000)
    app = ReplayApp(samples.write(tmp_path / "big.replay", evs))
    async with running(app) as pilot:
        tl = main(app).timeline
        assert app.cassette is not None and isinstance(app.cassette.events, replay.EventLog)
        assert tl.row_count == 20_000 and app.cassette.damage is None
        await press(pilot, "G")
        assert seq(app) == 19_999
        height = tl.scrollable_content_region.height
        lines = [tl.render_line(y).text for y in range(height)]
        assert [int(line.split()[0]) for line in lines] == list(range(20_000 - height, 20_000))
        assert evs[19_999].channel[:8] in lines[-1]
        await press(pilot, "pageup", "E")  # errors come from the index's flag column
        assert tl.index is not None and ERROR in main(app).model.flags_of(tl.index)
        assert auto_flags(main(app).model.events[tl.index]) == {ERROR}  # as decoded


@pytest.mark.parametrize("frame", ["first", "last"])
async def test_a_damaged_packed_file_is_shown_then_said_damaged(
        tmp_path: pathlib.Path, frame: str) -> None:
    """A packed file is shown from its index before its frames' checksums are checked
    (in the background); a damaged frame then reloads it as damaged, with its banner.
    Rows in the damaged frame drawn before that say they cannot be read: no crash."""
    evs = samples.big_run(8_000)
    path = samples.write(tmp_path / "big.replay", evs)
    log = replay.read_cassette(path).events
    assert isinstance(log, replay.EventLog)
    frames = log._p.index.frames
    k = 0 if frame == "first" else len(frames["off"]) - 1
    assert len(frames["off"]) >= 2
    data = bytearray(pathlib.Path(path).read_bytes())
    data[int(frames["off"][k]) + int(frames["len"][k]) // 2] ^= 0x40
    pathlib.Path(path).write_bytes(bytes(data))
    app = ReplayApp(path)
    async with running(app) as pilot:
        screen = main(app)
        assert app.cassette is not None and app.cassette.damage is not None
        banner = screen.query_one("#banner", Static)
        assert not banner.has_class("hidden") and "big.replay" in text_of(banner)
        assert screen.timeline.row_count == len(app.cassette.events) < 8_000
        await press(pilot, "G", "g")
        assert app.is_running


async def test_loading_shows_progress_until_the_worker_is_done(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    path = samples.write(tmp_path / "slow.replay", samples.agent_run())
    gate = threading.Event()
    real = replay.read_cassette

    def slow_read(*args: Any, **kwargs: Any) -> replay.Cassette:
        assert gate.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(replay, "read_cassette", slow_read)
    app = ReplayApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = main(app)
        assert not screen.query_one("#loading").has_class("hidden")
        assert screen.timeline.row_count == 0  # the panes are there, empty
        assert not screen.query(Footer)  # mounted with the run (it would slow the reading)
        label = screen.query_one("#loading-label", Static)
        assert "reading slow.replay (0.0 MB)" in text_of(label)
        await pilot.press("j", "c", "s")  # keys while loading do no harm
        await pilot.pause()
        assert "still loading" in screen.message
        gate.set()
        await settle(pilot)
        assert screen.query_one("#loading").has_class("hidden") and app.model is not None
        assert screen.timeline.row_count == len(samples.agent_run())
        assert screen.query(Footer)
