"""``@replay.recorded``: each call a stored run, re-invoked in-process and in a
fresh process from the run alone (issue 17)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import replay
from fixtures.emulator import Emulator, Turn
from fixtures.service import agent
from replay._runs.entry import EntryError
from replay._runs.store import RunStatus, open_store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.chdir(tmp_path)
    url = str(tmp_path / "runs")
    monkeypatch.setenv("REPLAY_STORE", url)
    yield url


@pytest.fixture
def llm(emulator: Callable[..., Emulator]) -> Emulator:
    return emulator(Turn(text="Pack a raincoat.", repeat=True))


def test_each_call_is_a_run_with_its_entry_and_arguments(store: str, llm: Emulator) -> None:
    out = agent.answer("what to pack?", llm.openai_base_url)
    [row] = open_store(store).query()
    assert row.entry == "fixtures.service.agent:answer"
    assert row.status is RunStatus.OK and row.error is None
    assert row.models == ("gpt-4o-mini",) and row.tools == ("lookup",)
    assert row.tags == ("fixture",) and row.tokens > 0
    header = replay.read_header(open_store(store).fetch(row.id))
    entry = header.meta["entry"]
    assert isinstance(entry, dict)
    assert entry["ref"] == "fixtures.service.agent:answer" and entry["async"] is False
    assert entry["args"] == ["what to pack?", llm.openai_base_url] and entry["kwargs"] == {}
    assert out["text"] == "Pack a raincoat."


def test_in_process_replay_gives_the_recorded_values(store: str, llm: Emulator) -> None:
    live = agent.answer("what to pack?", llm.openai_base_url)
    llm.stop()  # the model is gone: only the recording can answer
    for _ in range(3):
        run = replay.play("last", unused="fail")
        assert run.invoke() == live
        assert run.result is not None and run.result.ok
    assert len(open_store(store).query()) == 1  # replays record nothing


def test_a_failed_call_is_stored_failed_and_replays_the_same_exception(
        store: str, llm: Emulator) -> None:
    with pytest.raises(ValueError, match="failed validation") as live:
        agent.answer("why?", llm.openai_base_url, fail=True)
    [row] = open_store(store).query()
    assert row.status is RunStatus.FAILED and row.error == f"ValueError: {live.value}"
    with pytest.raises(ValueError) as again:
        replay.play(row.id[:17]).invoke()
    assert str(again.value) == str(live.value)


def test_async_entry_records_and_replays(store: str, llm: Emulator) -> None:
    live = asyncio.run(agent.aanswer("async?", llm.openai_base_url))
    [row] = open_store(store).query()
    assert row.entry == "fixtures.service.agent:aanswer" and row.tags == ("fixture", "async")
    llm.stop()
    assert replay.play("last").invoke() == live  # a fresh event loop

    async def inside_a_loop() -> object:
        with pytest.raises(EntryError, match="ainvoke"):
            replay.play("last").invoke()
        return await replay.play("last").ainvoke()
    assert asyncio.run(inside_a_loop()) == live


def test_flag_marks_the_run_failed(store: str, llm: Emulator) -> None:
    out = agent.answer("raise a flag", llm.openai_base_url)
    row = open_store(store).get("last")
    assert row.status is RunStatus.FAILED
    assert row.error == f"flagged: question mentions a flag ({out['ticket']})"
    assert row.attrs["flag"] == f"question mentions a flag ({out['ticket']})"
    assert replay.flag("outside any run") is False


def test_arguments_are_redacted_in_the_header(store: str, llm: Emulator) -> None:
    secret = "sk-proj-" + "A1b2C3d4" * 6
    agent.answer(f"my key is {secret}", llm.openai_base_url)
    data = Path(open_store(store).fetch(open_store(store).get("last").id)).read_bytes()
    assert secret.encode() not in data


def test_unserialisable_arguments_are_recorded_but_not_reinvocable(store: str) -> None:
    @replay.recorded()
    def local(x: object) -> int:
        return 1
    local(object())
    with pytest.raises(EntryError, match=r"cannot be re-invoked: .*inside a function"):
        replay.play("last").invoke()


def test_replay_play_reinvokes_in_a_fresh_process(store: str, llm: Emulator) -> None:
    live = agent.answer("fresh?", llm.openai_base_url)
    llm.stop()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for ref in ("last", open_store(store).get("last").id):
        proc = subprocess.run([sys.executable, "-m", "replay._cli", "play", ref],
                              capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == live
        assert "served" in proc.stderr and "0 divergence" in proc.stderr


def test_replay_play_of_a_failed_run_exits_1_with_its_exception(store: str,
                                                                 llm: Emulator) -> None:
    with pytest.raises(ValueError):
        agent.answer("why?", llm.openai_base_url, fail=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "replay._cli", "play", "last"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert "ValueError: the answer to 'why?' failed validation" in proc.stderr
