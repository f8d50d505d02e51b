"""Fork: replay the first N events of a 10-step run, then go live against a changed model."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import replay
from fixtures.agents import branching_agent
from fixtures.emulator import Emulator, Script, ToolCall, Turn

ROOT = Path(__file__).resolve().parent.parent
AGENT = str(ROOT / "fixtures" / "agents" / "branching_agent.py")
TASK = "Plan the launch in ten steps."
STEPS = 10
FORK_STEP = 5


def plan(word: str, start: int = 0) -> list[Turn]:
    return [Turn(tool_calls=[ToolCall("think", {"step": k, "note": f"{word} part {k}"})])
            for k in range(start, STEPS - 1)] + [Turn(text=f"{word.capitalize()} plan done.")]


@pytest.fixture()
def emulator() -> Iterator[Emulator]:
    with Emulator(Script(plan("original"))) as emu:
        yield emu


def by_seq(path: Path | str) -> list[replay.Event]:
    return sorted(replay.load(path).events, key=lambda e: e.seq)


def http_seqs(path: Path | str) -> list[int]:
    return [e.seq for e in by_seq(path) if e.channel == "http"]


def record(tmp_path: Path, emu: Emulator) -> tuple[Path, list[str]]:
    path = tmp_path / "ten.replay"
    with replay.record(path):
        transcript = branching_agent.run_agent(emu.openai_base_url, TASK)
    assert len(http_seqs(path)) == STEPS
    return path, transcript


def test_fork_at_n_replays_the_prefix_and_records_the_rest_live(
        tmp_path: Path, emulator: Emulator) -> None:
    parent, recorded = record(tmp_path, emulator)
    n = http_seqs(parent)[FORK_STEP]  # the model call of step 5 is the first live event
    emulator.replace_from(FORK_STEP, plan("revised", FORK_STEP))
    child = tmp_path / "fork.replay"
    with replay.fork(parent, at=n, output=child) as run:
        forked = branching_agent.run_agent(emulator.openai_base_url, TASK)

    # the agent saw the recorded answers up to step 5, then the new ones
    assert forked[:FORK_STEP + 1] == recorded[:FORK_STEP + 1]
    assert forked[FORK_STEP + 1:] != recorded[FORK_STEP + 1:]
    assert "revised part 5" in forked[FORK_STEP + 1] and forked[-1].endswith(
        "'Revised plan done.'")
    assert emulator.request_count - STEPS == STEPS - FORK_STEP  # only steps 5..9 were asked

    old, new = by_seq(parent), by_seq(child)
    assert [e for e in new if e.seq < n] == [e for e in old if e.seq < n]
    old_at = {e.seq: e for e in old}
    assert all(e != old_at.get(e.seq) for e in new if e.seq >= n)
    assert [e.seq for e in new] == list(range(len(new)))
    # live events continue the prefix's timeline
    assert min(e.start_ns for e in new if e.seq >= n) >= max(
        e.start_ns for e in new if e.seq < n)

    link = replay.parent_of(child)
    assert link is not None and link.at == n and link.edited is None
    assert link.path == str(parent) and link.is_parent(parent)
    assert run.result is not None and run.result.ok
    assert run.result.live > 0 and run.result.output == str(child)
    assert run.result.mode is replay.RecordMode.NEW_EVENTS

    # the fork is a cassette like any other: it replays strictly, emulator off
    url = emulator.openai_base_url
    emulator.stop()
    with replay.play(child, unused="fail") as again:
        assert branching_agent.run_agent(url, TASK) == forked
    assert again.result is not None and again.result.ok


def test_a_request_that_leaves_the_prefix_diverges_unless_live(
        tmp_path: Path, emulator: Emulator) -> None:
    parent, _ = record(tmp_path, emulator)
    n = http_seqs(parent)[FORK_STEP]
    with pytest.raises(replay.DivergenceError) as info:
        with replay.fork(parent, at=n, output=tmp_path / "strict.replay", unused="ignore"):
            branching_agent.run_agent(emulator.openai_base_url, "Another task")
    assert info.value.divergence.grade is replay.Grade.CHANGED
    assert info.value.divergence.seq == http_seqs(parent)[0]

    emulator.load(Script(plan("other")))
    with replay.fork(parent, at=n, output=tmp_path / "lenient.replay", live=True,
                     unused="ignore") as run:
        out = branching_agent.run_agent(emulator.openai_base_url, "Another task")
    assert "other part 0" in out[1]
    assert run.result is not None and run.result.divergences == ()


def test_fork_rejects_its_parent_as_output(tmp_path: Path, emulator: Emulator) -> None:
    parent, _ = record(tmp_path, emulator)
    with pytest.raises(replay.SessionError, match="other than its parent"):
        with replay.fork(parent, at=3, output=parent):
            pass
    assert replay.parent_of(parent) is None


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "replay._cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_cli_fork(tmp_path: Path, emulator: Emulator) -> None:
    parent = tmp_path / "cli-ten.replay"
    program = ["--", "python", AGENT, "--base-url", emulator.openai_base_url, "--task", TASK]
    rec = cli("record", "-o", str(parent), *program)
    assert rec.returncode == 0, rec.stderr
    recorded = rec.stdout.splitlines()
    n = http_seqs(parent)[FORK_STEP]
    emulator.replace_from(FORK_STEP, plan("revised", FORK_STEP))
    child = tmp_path / "cli-fork.replay"
    proc = cli("fork", str(parent), "--at", str(n), "-o", str(child), *program)
    assert proc.returncode == 0, proc.stderr
    assert f"forked {parent} at #{n}" in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:FORK_STEP + 1] == recorded[:FORK_STEP + 1]
    assert "revised part 5" in lines[FORK_STEP + 1]
    old, new = by_seq(parent), by_seq(child)
    assert [e for e in new if e.seq < n] == [e for e in old if e.seq < n]
    link = replay.parent_of(child)
    assert link is not None and link.at == n and link.is_parent(parent)
