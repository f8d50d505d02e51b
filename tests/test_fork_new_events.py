"""The new-events record mode: replay what matches, run and append what does not."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import replay
from replay import RecordMode
from replay._capture import clock as _clock

calls: list[str] = []
NAP = 0.4


@replay.tool
def lookup(key: str) -> dict[str, object]:
    calls.append(key)
    return {"key": key, "v": random.random(), "token": f"sk-proj-{uuid.uuid4().hex}"}


def agent(keys: list[str], nap: float = 0.0) -> list[object]:
    out: list[object] = [time.time()]
    for k in keys:
        if nap:
            time.sleep(nap)
        out.append(lookup(k))
    out.append(str(uuid.uuid4()))
    return out


def plain(out: list[object]) -> list[object]:
    """The transcript without the tokens (the recording holds them redacted)."""
    return [{k: v for k, v in x.items() if k != "token"} if isinstance(x, dict) else x
            for x in out]


def by_seq(path: Path) -> list[replay.Event]:
    return sorted(replay.load(path).events, key=lambda e: e.seq)


def test_without_a_cassette_it_records(tmp_path: Path) -> None:
    path = tmp_path / "ne.replay"
    with replay.run(path, mode="new-events") as run:
        agent(["a"])
    assert run.result is not None and run.result.mode is RecordMode.RECORD
    assert [e.channel for e in by_seq(path)] == ["clock", "tool:lookup", "random", "uuid",
                                                 "uuid"]


def test_the_same_run_is_served_whole_and_rewritten_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "same.replay"
    with replay.record(path):
        first = agent(["a", "b"])
    before = by_seq(path)
    calls.clear()
    with replay.run(path, mode="new-events", unused="fail") as run:
        assert plain(agent(["a", "b"])) == plain(first)
    assert calls == []  # served, not run
    assert run.result is not None and run.result.live == 0 and run.result.ok
    assert by_seq(path) == before


def test_a_changed_run_goes_live_where_it_differs(tmp_path: Path) -> None:
    path = tmp_path / "changed.replay"
    with replay.record(path):
        first = agent(["a", "b", "c"])
    calls.clear()
    with replay.run(path, mode="new-events", unused="ignore") as run:
        second = agent(["a", "x", "c"])
    assert calls == ["x"]  # only the new call ran
    second, first = plain(second), plain(first)
    assert second[1] == first[1] and second[3] == first[3] and second[2] != first[2]
    result = run.result
    assert result is not None and result.live >= 1 and result.divergences == ()
    assert [e.request for e in result.unconsumed] == [{"args": {"key": "b"}}]

    events = by_seq(path)
    assert [e.seq for e in events] == list(range(len(events)))
    tools = [e.request["args"]["key"] for e in events  # type: ignore[index, call-overload]
             if e.channel == "tool:lookup"]
    assert tools == ["a", "x", "c"]  # this run in its order; the unused "b" is left out
    # new events went through the writer: the key-shaped token is redacted
    x = next(e for e in events if e.channel == "tool:lookup" and e.request == {
        "args": {"key": "x"}})
    assert "sk-proj-" not in str(x.response) and "REDACTED" in str(x.response)
    # nested events moved with their (renumbered) tool
    assert all(e.parent is not None and events[e.parent].channel == "tool:lookup"
               for e in events if e.channel == "random")

    # the new cassette replays the new run strictly, nothing left unused
    calls.clear()
    with replay.play(path, unused="fail") as again:
        third = plain(agent(["a", "x", "c"]))
    assert calls == [] and third == second
    assert again.result is not None and again.result.divergences == ()
    assert again.result.unconsumed == ()


def test_sleeps_are_skipped_while_served_and_real_once_live(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sleepy.replay"
    with replay.record(path):
        agent(["a", "b"], nap=NAP)
    sleeps = [e.seq for e in by_seq(path) if e.channel == "sleep"]
    slept: list[float] = []  # the real time.sleep, counted rather than timed
    monkeypatch.setattr(_clock, "_sleep", slept.append)
    with replay.run(path, mode="new-events", unused="ignore"):
        agent(["a", "b"], nap=NAP)
    assert slept == []  # both served: no real sleep
    assert [e.seq for e in by_seq(path) if e.channel == "sleep"] == sleeps
    with replay.run(path, mode="new-events", unused="ignore"):
        agent(["a", "z"], nap=NAP)  # z is new, but its task still has recorded events
    assert slept == []
    out = tmp_path / "fork.replay"
    z = next(e.seq for e in by_seq(path) if e.channel == "tool:lookup" and e.request == {
        "args": {"key": "z"}})
    with replay.fork(path, at=z, output=out, unused="ignore"):
        agent(["a", "z", "q"], nap=NAP)  # the prefix ends before z: live from there
    assert slept == [NAP, NAP]  # before z and q; the one before a was served
    assert len([e for e in by_seq(out) if e.channel == "sleep"]) == 3


def test_modes_reject_options_they_do_not_take(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="new-events"):
        replay.run(tmp_path / "x.replay", mode="replay", at=3)
    with pytest.raises(ValueError, match="record, replay, auto, new-events"):
        replay.run(tmp_path / "x.replay", mode="fork")


def test_cli_play_takes_the_record_mode(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    agent_py = str(root / "fixtures" / "agents" / "core_agent.py")
    path = tmp_path / "auto.replay"

    def play(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "replay._cli", "play", str(path), *args, "--", "python",
             agent_py, "--sleep", "0"], capture_output=True, text=True, cwd=root,
            timeout=120, env=dict(os.environ, PYTHONPATH=str(root)))

    first = play("--mode", "auto")  # no cassette yet: records
    assert first.returncode == 0, first.stderr
    assert path.exists() and f"to {path}" in first.stderr
    again = play("--mode", "auto", "--unused", "fail")  # now it replays
    assert again.returncode == 0 and again.stdout == first.stdout
    assert "0 divergence(s)" in again.stderr and "wrote" not in again.stderr
    assert play("--mode", "once").returncode != 0
    assert "-o is for the recording modes" in play("-o", str(tmp_path / "x.replay")).stderr
