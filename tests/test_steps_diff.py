"""Diffs aligned step by step: an inserted tool call is one inserted step, not a cascade."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import replay
from fixtures.emulator import Emulator, ToolCall, Turn
from replay._cli import main
from tests.test_steps import APIS, record_agent
from tests.test_steps_cli import assert_snapshot

WEATHER = Turn(tool_calls=[ToolCall("steps_weather", {"city": "Rome"})])
ALERTS = Turn(tool_calls=[ToolCall("steps_alerts", {"city": "Rome"})])
ANSWER = Turn(text="Sunny in Rome: no umbrella.")


@pytest.mark.parametrize("api", APIS)
def test_an_inserted_tool_call_is_one_inserted_step(
        tmp_path: Path, emulator: Callable[..., Emulator], api: str) -> None:
    left = record_agent(tmp_path, emulator, api, True, WEATHER, ANSWER, name="left")
    right = record_agent(tmp_path, emulator, api, True, WEATHER, ALERTS, ANSWER, name="right")
    d = replay.step_diff(left, right)
    assert [(p.status.value, p.name) for p in d.pairs if p.differs] == [
        ("only-right", replay.steps(right)[1].name)]
    assert d.pairs[1].right is not None and d.pairs[1].right.index == 1
    assert [t.call.name for t in d.pairs[1].right.tools] == ["steps_alerts"]
    # The answer step after it resends the inserted step's messages: shifted, not changed.
    last = d.pairs[-1]
    assert last.left is not None and last.right is not None
    assert last.shifted and not last.differs and last.what() == "same (context shifted)"
    assert d.counts() == {"same": 2, "changed": 0, "only-left": 0, "only-right": 1}
    assert d.first_divergence is d.pairs[1] and not d.same
    # And the other way round: one removed step.
    back = replay.step_diff(right, left)
    assert [(p.status.value, p.left.index if p.left else None) for p in back.pairs
            if p.differs] == [("only-left", 1)]


def test_a_changed_tool_result_is_a_changed_step(
        tmp_path: Path, emulator: Callable[..., Emulator]) -> None:
    left = record_agent(tmp_path, emulator, "chat", False, WEATHER, ANSWER, name="left")
    right = record_agent(tmp_path, emulator, "chat", False,
                         Turn(tool_calls=[ToolCall("steps_weather", {"city": "Oslo"})]),
                         ANSWER, name="right")
    d = replay.step_diff(left, right)
    first, last = d.pairs
    assert (first.status.value, first.kind.value) == ("changed", "behaviour")
    assert first.what().startswith(f"#{replay.steps(left)[0].seq} model call: ")
    assert last.differs and not last.shifted  # its context holds another tool result
    same = replay.step_diff(left, left)
    assert same.same and all(p.status.value == "same" for p in same.pairs)


def test_replay_diff_prints_and_exports_the_steps(
        tmp_path: Path, emulator: Callable[..., Emulator],
        capsys: pytest.CaptureFixture[str]) -> None:
    left = record_agent(tmp_path, emulator, "chat", True, WEATHER, ANSWER, name="left")
    right = record_agent(tmp_path, emulator, "chat", True, WEATHER, ALERTS, ANSWER,
                         name="right")
    assert main(["diff", str(left), str(right)]) == 1
    out = capsys.readouterr().out
    tail = out[out.index("\nsteps: "):].strip()
    assert_snapshot("diff_steps.txt", tail + "\n")  # docs/diff.md shows it
    assert main(["diff", str(left), str(right), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "agent-replay/diff/2" and "pairs" in doc  # diff/2 as before
    steps = doc["steps"]
    assert (steps["left"], steps["right"], steps["first_divergence"]) == (2, 3, 1)
    assert [(p["status"], p["shifted"]) for p in steps["pairs"]] == [
        ("same", False), ("only-right", False), ("same", True)]
    assert steps["pairs"][1]["right"]["name"] == "gpt-4o-mini -> steps_alerts"
    assert steps["pairs"][1]["left"] is None
