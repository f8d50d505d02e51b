"""Screen snapshots (pytest-textual-snapshot) of every TUI screen.

The sample run is fixed data (no clock, fake call-site paths) and the terminal
size is fixed, so the SVGs are the same on every machine. After a deliberate
change: ``pytest tests/test_tui_snapshots.py --snapshot-update``, then look at
the SVGs before committing them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from textual.pilot import Pilot

import replay
from tests import tui_samples as samples
from tui.app import ReplayApp
from tui.model import DIVERGENCE, DRIFT

SIZE = (120, 36)
Snap = Callable[..., bool]


async def settle(pilot: Pilot[Any]) -> None:
    """Wait for loading (it starts after the first paint) and every worker, then a frame."""
    await samples.until_settled(pilot)


def keys(*names: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """A run_before that waits for loading, presses ``names``, and waits again."""
    async def run(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        for name in names:
            await pilot.press(name)
            await settle(pilot)
    return run


def sample_app(**kw: Any) -> ReplayApp:
    return ReplayApp(samples.agent_cassette(), **kw)


def test_timeline_with_flags(snap_compare: Snap) -> None:
    app = sample_app(flags={5: {DRIFT}, 12: {DIVERGENCE, DRIFT}}, start_at=8)
    assert snap_compare(app, terminal_size=SIZE, run_before=keys())


def test_detail_of_a_model_call(snap_compare: Snap) -> None:
    assert snap_compare(sample_app(start_at=3), terminal_size=SIZE, run_before=keys())


def test_conversation(snap_compare: Snap) -> None:
    assert snap_compare(sample_app(start_at=11), terminal_size=SIZE, run_before=keys("2"))


def test_stream_playback_paused_midway(snap_compare: Snap) -> None:
    app = sample_app(start_at=11)
    assert snap_compare(app, terminal_size=SIZE,
                        run_before=keys("3", *["full_stop"] * 6, "plus"))


def test_search_and_channel_filter(snap_compare: Snap) -> None:
    app = sample_app()
    assert snap_compare(app, terminal_size=SIZE,
                        run_before=keys("slash", *"declined", "enter", "f"))


def test_help(snap_compare: Snap) -> None:
    assert snap_compare(sample_app(), terminal_size=SIZE, run_before=keys("question_mark"))


def test_stats(snap_compare: Snap) -> None:
    assert snap_compare(sample_app(), terminal_size=SIZE, run_before=keys("s"))


def test_diff(snap_compare: Snap) -> None:
    other = replay.Cassette("/srv/runs/replayed.replay", samples.HEADER,
                            tuple(samples.diverged_run()))
    app = ReplayApp(samples.agent_cassette(), other)
    assert snap_compare(app, terminal_size=SIZE, run_before=keys("c", "n"))


def test_damaged_cassette_banner(snap_compare: Snap) -> None:
    damage = replay.CassetteTruncatedError(
        "file ends before the end record (the recording did not finish)", offset=3310,
        events_read=18, path="/srv/runs/killed.replay")
    cassette = replay.Cassette("/srv/runs/killed.replay", samples.HEADER,
                               tuple(samples.agent_run()[:18]), damage)
    assert snap_compare(ReplayApp(cassette), terminal_size=SIZE, run_before=keys("G"))


# --- issue 15: steps, waterfall, context diff, 80x24 ------------------------------------

SMALL = (80, 24)


def context_app(**kw: Any) -> ReplayApp:
    return ReplayApp(replay.Cassette("/srv/runs/support.replay", samples.HEADER,
                                     tuple(samples.context_run())), **kw)


def test_step_tree_with_waterfall(snap_compare: Snap) -> None:
    """``t``: the run as steps, every event a bar on the run's time axis; the cursor on
    step 1's row, its tokens, cost and running total in the detail pane."""
    assert snap_compare(sample_app(start_at=3), terminal_size=SIZE, run_before=keys("t"))


def test_step_tree_folded(snap_compare: Snap) -> None:
    """``[`` folds every step: one row each, with duration, tokens, cost and Σ cost."""
    assert snap_compare(sample_app(start_at=7), terminal_size=SIZE,
                        run_before=keys("t", "left_square_bracket"))


def test_context_diff_in_the_detail_pane(snap_compare: Snap) -> None:
    """What the model read at #2 against #0: the system prompt changed (a diff), the
    user's message truncated, the tool call and its result added."""
    assert snap_compare(context_app(start_at=2), terminal_size=(120, 48), run_before=keys())


def test_layout_at_80x24(snap_compare: Snap) -> None:
    """The main screen at 80x24: no time column, short channels, the title wraps."""
    other = replay.Cassette("/srv/runs/replayed.replay", samples.HEADER,
                            tuple(samples.diverged_run()))
    app = ReplayApp(samples.agent_cassette(), other, start_at=3)
    assert snap_compare(app, terminal_size=SMALL, run_before=keys())


def test_step_tree_at_80x24(snap_compare: Snap) -> None:
    assert snap_compare(sample_app(start_at=3), terminal_size=SMALL, run_before=keys("t"))
