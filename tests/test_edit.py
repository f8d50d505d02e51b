"""What-if edits: change one recorded answer, replay, and watch the agent take the other path."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import replay
from fixtures.agents import branching_agent
from fixtures.emulator import Emulator, Script, ToolCall, Turn, When

ROOT = Path(__file__).resolve().parent.parent
AGENT = str(ROOT / "fixtures" / "agents" / "branching_agent.py")
TASK = "Order 2 blue widgets"
SHOP = Script([
    Turn(tool_calls=[ToolCall("check_inventory", {"item": "blue widget"})]),
    Turn(tool_calls=[ToolCall("place_order", {"item": "blue widget", "qty": 2})],
         when=When(tool_result_contains='"in_stock": true'), group="stock"),
    Turn(tool_calls=[ToolCall("notify_backorder", {"item": "blue widget"})],
         when=When(tool_result_contains='"in_stock": false'), group="stock"),
    Turn(text="All done.", repeat=True),
])


@pytest.fixture()
def shop(tmp_path: Path) -> Iterator[tuple[Emulator, Path, list[str]]]:
    path = tmp_path / "shop.replay"
    with Emulator(SHOP) as emu:
        with replay.record(path):
            transcript = branching_agent.run_agent(emu.openai_base_url, TASK)
        yield emu, path, transcript


def seq_of(path: Path, channel: str, nth: int = 0) -> int:
    return sorted(e.seq for e in replay.load(path).events if e.channel == channel)[nth]


def test_editing_a_tool_result_takes_the_other_branch(
        tmp_path: Path, shop: tuple[Emulator, Path, list[str]]) -> None:
    emu, path, recorded = shop
    assert any("place_order" in line for line in recorded)
    k = seq_of(path, "tool:check_inventory")
    what_if = tmp_path / "what-if.replay"
    new = replay.edit(path, event=k, output=what_if, set={"in_stock": False, "count": 0})
    assert new.response == {"item": "blue widget", "in_stock": False, "count": 0}
    link = replay.parent_of(what_if)
    assert link is not None and link.edited == k and link.is_parent(path)

    # strict (the default): the edited answer is served, and replay stops where the
    # agent's path leaves the recording: the model is asked about another stock level
    with pytest.raises(replay.DivergenceError) as info:
        with replay.play(what_if, unused="ignore"):
            branching_agent.run_agent(emu.openai_base_url, TASK)
    div = info.value.divergence
    assert div.grade is replay.Grade.CHANGED and div.seq == seq_of(path, "http", 1)
    assert any('"in_stock": false' in str(c.new) for c in div.changes)

    # live: what still matches is replayed, the rest runs against the model
    emu.replace_from(1, SHOP.turns[1:])  # the model resumes at its second answer
    after = tmp_path / "after.replay"
    with replay.run(what_if, mode="new-events", output=after, unused="ignore") as run:
        took = branching_agent.run_agent(emu.openai_base_url, TASK)
    assert took[0] == recorded[0]  # the session id: replayed
    assert took[1] == ('step 0: check_inventory({"item": "blue widget"}) -> '
                       '{"count": 0, "in_stock": false, "item": "blue widget"}')
    assert took[2].startswith('step 1: notify_backorder({"item": "blue widget"}) -> ')
    assert not any("place_order" in line for line in took)
    assert took[-1] == "step 2: answer 'All done.'"
    result = run.result
    assert result is not None and result.divergences == ()
    assert result.consumed >= 4 and result.live >= 3  # the first turn; the new path
    assert {e.channel for e in result.unconsumed} >= {"tool:place_order"}

    # the new path is a cassette of its own: strict replay, model off
    url = emu.openai_base_url
    emu.stop()
    with replay.play(after, unused="ignore") as again:
        assert branching_agent.run_agent(url, TASK) == took
    assert again.result is not None and again.result.divergences == ()


def test_editing_a_model_answer(tmp_path: Path, shop: tuple[Emulator, Path, list[str]]) -> None:
    emu, path, recorded = shop
    last = seq_of(path, "http", 2)
    edited = tmp_path / "answer.replay"
    replay.edit(path, event=last, output=edited,
                set={"choices[0].message.content": "Sorry, we are closed."})
    with replay.play(edited, unused="fail"):
        out = branching_agent.run_agent(emu.openai_base_url, TASK)
    assert out[:-1] == recorded[:-1]
    assert out[-1] == "step 2: answer 'Sorry, we are closed.'"


def test_editing_a_clock_value_and_an_error(tmp_path: Path) -> None:
    path = tmp_path / "clock.replay"

    @replay.tool
    def fetch(x: int) -> int:
        return x * 2

    def now() -> float:  # one call site in every run
        return time.time()

    with replay.record(path):
        now()
        fetch(1)
    clock = tmp_path / "clock-edit.replay"
    replay.edit(path, event=0, output=clock, response=1234.5)
    with replay.play(clock, unused="fail"):
        assert now() == 1234.5
        assert fetch(1) == 2
    failing = tmp_path / "fail.replay"
    replay.edit(path, event=1, output=failing, error="builtins.TimeoutError: too slow")
    with replay.play(failing, unused="fail"):
        now()
        with pytest.raises(TimeoutError, match="too slow"):
            fetch(1)


def test_edit_errors_name_what_is_wrong(tmp_path: Path,
                                        shop: tuple[Emulator, Path, list[str]]) -> None:
    _, path, _ = shop
    out = tmp_path / "x.replay"
    with pytest.raises(replay.EditError, match="no event #999"):
        replay.edit(path, event=999, output=out, response=1)
    with pytest.raises(replay.EditError, match="nothing to change"):
        replay.edit(path, event=0, output=out)
    with pytest.raises(replay.EditError, match="no field 'nope'"):
        replay.edit(path, event=seq_of(path, "tool:check_inventory"), output=out,
                    set={"nope.deeper": 1})
    nested = next(e for e in replay.load(path).events if e.parent is not None)
    with pytest.raises(replay.EditError, match=f"inside #{nested.parent}"):
        replay.edit(path, event=nested.seq, output=out, response=1)
    with pytest.raises(replay.EditError, match="writes a copy"):
        replay.edit(path, event=0, output=path, response=1)
    assert not out.exists()


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "replay._cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, input=stdin,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_cli_edit_then_play_live(tmp_path: Path) -> None:
    with Emulator(SHOP) as emu:
        program = ["--", "python", AGENT, "--base-url", emu.openai_base_url]
        rec = tmp_path / "cli-shop.replay"
        assert cli("record", "-o", str(rec), *program).returncode == 0
        k = seq_of(rec, "tool:check_inventory")
        what_if = tmp_path / "cli-what-if.replay"
        ed = cli("edit", str(rec), "--event", str(k), "--set", "in_stock=false",
                 "--set", "count=0", "-o", str(what_if))
        assert ed.returncode == 0, ed.stderr
        assert "response.in_stock: True -> False" in ed.stderr
        strict = cli("play", str(what_if), "--unused", "ignore", *program)
        assert strict.returncode != 0 and "request changed" in strict.stderr
        emu.replace_from(1, SHOP.turns[1:])
        after = tmp_path / "cli-after.replay"
        live = cli("play", str(what_if), "--live", "-o", str(after), "--unused", "ignore",
                   *program)
        assert live.returncode == 0, live.stderr
        assert "notify_backorder" in live.stdout and "place_order" not in live.stdout
        assert f"to {after}" in live.stderr
        bad = cli("edit", str(rec), "--event", str(k), "--set", "nope.x=1", "-o",
                  str(tmp_path / "bad.replay"))
        assert bad.returncode != 0 and "no field 'nope'" in bad.stderr
