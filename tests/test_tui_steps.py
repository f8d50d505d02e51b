"""The step tree (``t``), its waterfall and costs, and what each model call read
(issue 15, items 2 and 3 in the TUI), driven with Textual's pilot."""

from __future__ import annotations

import pytest

import replay
import tui.app
from tests import tui_samples as samples
from tests.tui_samples import press, running, seq, settle
from tui.app import ReplayApp
from tui.detail import DetailPane
from tui.model import DIVERGENCE, ERROR
from tui.steptree import StepTree, fmt_cost, fmt_tokens, waterfall
from tui.timeline import Timeline

SIZE = (120, 36)




def detail(app: ReplayApp) -> str:
    return " ".join(" ".join(app.main.query_one(DetailPane).lines).split())


def tree(app: ReplayApp) -> StepTree:
    tl = app.main.timeline
    assert isinstance(tl, StepTree)
    return tl


def test_waterfall_places_bars_on_the_run_time_axis() -> None:
    assert waterfall(0, 100, 100, 10) == (0, 10)
    assert waterfall(50, 60, 100, 10) == (5, 1)
    assert waterfall(99, 100, 100, 10) == (9, 1)  # never past the axis
    assert waterfall(0, 1, 1_000_000, 10) == (0, 1)  # at least one cell
    assert waterfall(0, 5, 0, 10) == (0, 10)
    assert (fmt_tokens(812), fmt_tokens(12_345), fmt_tokens(2_500_000)) == (
        "812", "12.3k", "2.50M")
    assert (fmt_cost(0.00015), fmt_cost(None), fmt_cost(12.5)) == ("$0.00015", "$?", "$12.50")


def test_run_context_diffs_is_context_diff_for_every_call() -> None:
    evs = samples.context_run()
    every = replay.run_context_diffs(evs)
    assert sorted(every) == [0, 2, 4]
    for s, d in every.items():
        assert d == replay.context_diff(evs, s)
    assert every[2].previous_seq == 0 and [c.status.value for c in every[2].changes] == [
        "changed", "truncated", "added", "added"]


async def test_t_shows_the_steps_with_their_events_tokens_and_cost() -> None:
    app = ReplayApp(samples.agent_cassette(), start_at=3)
    async with running(app) as pilot:
        steps = app.main.steps
        assert steps is not None and [s.seq for s in steps] == [0, 3, 7, 10, 11, 12]
        await press(pilot, "t")
        tl = tree(app)
        assert app.main.tree_mode and not tl.has_class("hidden")
        assert app.main.query_one("#timeline", Timeline).has_class("hidden")
        assert seq(app) == 3 and tl.on_step_row and tl.step is steps[1]
        assert tl.row_count == len(steps) + 21  # every step and every event
        row = tl.render_line(tl.cursor - round(tl.scroll_y)).text
        assert "1 gpt-4o-mini -> search_fli" in row and "640ms" in row
        assert "Σ$0.00015" in row and "█" in row  # the running cost and the bar
        text = detail(app)
        assert "step 1: gpt-4o-mini -> search_flights" in text
        assert "this step 812 in + 41 out = 853 tokens" in text
        assert "search_flights" in text and "ran as #4 result read by #7" in text
        await press(pilot, "j")  # the model call's own row: its event, not the step
        assert seq(app) == 3 and not tl.on_step_row and "step 1:" not in detail(app)
        assert "what the model read (first call of conversation 1)" in detail(app)
        assert app.main.query_one("#status").render()  # drawn
        await press(pilot, "t")
        assert not app.main.tree_mode and seq(app) == 3


async def test_steps_fold_and_a_jump_into_a_folded_step_opens_it() -> None:
    app = ReplayApp(samples.agent_cassette(), start_at=0)
    async with running(app) as pilot:
        await press(pilot, "t", "left_square_bracket")
        tl = tree(app)
        assert tl.row_count == 6 and tl.collapsed == set(range(6))
        await press(pilot, "e")  # #8 tool:book raised, inside step 2
        assert seq(app) == 8 and 2 not in tl.collapsed
        assert ERROR in app.main.model.flags_of(app.main.model.index_of[8])
        await press(pilot, "k")  # up to step 2's row...
        await press(pilot, "k")
        assert tl.on_step_row and tl.step is not None and tl.step.index == 2
        await press(pilot, "enter")  # ...and fold it again
        assert 2 in tl.collapsed and tl.on_step_row
        await press(pilot, "right")
        assert 2 not in tl.collapsed
        await press(pilot, "right_square_bracket")
        assert not tl.collapsed and tl.row_count == 27


async def test_filters_and_search_work_in_the_tree() -> None:
    app = ReplayApp(samples.agent_cassette())
    async with running(app) as pilot:
        await press(pilot, "t", "F")  # only errors: the steps that hold them, and them
        tl = tree(app)
        rows = [tl.row_at(r) for r in range(tl.row_count)]
        assert [(r.step, r.event is not None) for r in rows if r is not None] == [
            (2, False), (2, True), (3, False), (3, True)]
        await press(pilot, "x", "slash", *"declined", "enter")
        assert app.main.matches and seq(app) in (8, 11)
        assert tl.matches == set(app.main.matches)


async def test_v_lands_on_the_first_divergence_in_the_tree() -> None:
    other = replay.Cassette("/srv/runs/replayed.replay", samples.HEADER,
                            tuple(samples.diverged_run()))
    app = ReplayApp(samples.agent_cassette(), other)
    async with running(app) as pilot:
        await press(pilot, "t", "g", "v")
        assert seq(app) == 4 and DIVERGENCE in app.main.model.flags_of(4)
        assert "vs replayed.replay #4" in detail(app)


async def test_context_diff_of_a_call_that_changed_its_prompt() -> None:
    app = ReplayApp(replay.Cassette("/srv/support.replay", samples.HEADER,
                                    tuple(samples.context_run())), start_at=2)
    async with running(app):
        text = detail(app)
        assert "what the model read (vs #0, conversation 1)" in text
        assert "1 added" not in text and "2 added, 1 changed, 0 removed, 1 truncated" in text
        assert "-Check the order total before any refund." in text
        assert "+Check the order amount before any refund." in text
        assert "< [1] user" in text and "+ [3] tool" in text


async def test_a_long_run_is_grouped_when_the_tree_is_asked_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tui.app, "STEPS_AUTO", 5)
    app = ReplayApp(samples.agent_cassette(), start_at=3)
    async with running(app) as pilot:
        assert app.main.steps is None and not app.main.contexts  # not grouped at load
        await pilot.press("t")
        await settle(pilot)
        assert app.main.steps is not None and app.main.tree_mode  # shown once grouped
        assert seq(app) == 3
