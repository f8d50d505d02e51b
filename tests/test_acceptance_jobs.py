"""Jobs a worker runs concurrently (fixtures/service/jobs.py), each a
``@replay.recorded`` run kept only when it failed: async jobs under an anyio task
group and under an ``asyncio.TaskGroup``, sync jobs in a ``ThreadPoolExecutor``.
Every job starts threads of its own, and the first jobs outlive the later
ones. The failed runs are found with ``replay ls --failed``; each replays
alone, and four at once in threads, to what the job returned or raised live,
and ``replay play ID`` in a fresh process prints what it returned."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest

import replay
from fixtures.emulator import Emulator, Turn
from fixtures.service import jobs
from replay._runs.store import RunRow, RunStatus, open_store

ROOT = Path(__file__).resolve().parent.parent
N = 9


def _wait(n: int) -> float:
    return 0.04 * (N - n)  # job 0 waits longest: it outlives every later job


def _run_worker(kind: str, base_url: str) -> dict[int, Any]:
    live: dict[int, Any] = {}

    async def one(n: int) -> None:
        try:
            live[n] = await jobs.ajob(n, base_url, _wait(n))
        except LookupError as exc:
            live[n] = ("raised", str(exc))

    if kind == "anyio":
        async def main() -> None:
            async with anyio.create_task_group() as tg:
                for n in range(N):
                    tg.start_soon(one, n)
        anyio.run(main)
    elif kind == "taskgroup":
        async def tmain() -> None:
            async with asyncio.TaskGroup() as tg:
                for n in range(N):
                    tg.create_task(one(n))
        asyncio.run(tmain())
    else:
        def tone(n: int) -> None:
            try:
                live[n] = jobs.tjob(n, base_url, _wait(n))
            except LookupError as exc:
                live[n] = ("raised", str(exc))
        with ThreadPoolExecutor(N) as pool:  # all at once, as the task groups run them
            list(pool.map(tone, range(N)))
    return live


def _job(row: RunRow) -> int:
    return int(row.attrs.get("flag", row.error or "").split("job ")[1].split()[0])


def _replayed(row: RunRow) -> Any:
    run = replay.play(row.id, unused="fail")
    try:
        got: Any = run.invoke()
    except LookupError as exc:
        got = ("raised", str(exc))
    assert run.result is not None and run.result.ok
    return got


@pytest.mark.parametrize("kind", ["anyio", "taskgroup", "threads"])
def test_a_concurrent_worker_keeps_its_failed_jobs_and_each_replays_exactly(
        kind: str, tmp_path: Path, emulator: Callable[..., Emulator],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = str(tmp_path / "runs")
    monkeypatch.setenv("REPLAY_STORE", store)
    llm = emulator(Turn(text="All in order.", chunks=["All ", "in ", "order."], repeat=True))
    live = _run_worker(kind, llm.openai_base_url)
    llm.stop()
    assert sorted(live) == list(range(N))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    listed = subprocess.run([sys.executable, "-m", "replay._cli", "ls", "--failed", "--json"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = {r.id: r for r in open_store(store).query()}
    kept = {_job(rows[f["id"]]): rows[f["id"]] for f in json.loads(listed.stdout)}
    assert sorted(kept) == [n for n in range(N) if n % 3]  # the plain returns dropped
    assert all(r.status is RunStatus.FAILED for r in kept.values())
    first, last = kept[1], kept[N - 1]  # started first, ended last
    assert first.start < last.start and first.start + first.duration > last.start + last.duration

    for n, row in kept.items():
        assert _replayed(row) == live[n], n
    with ThreadPoolExecutor(4) as pool:  # four at once: no cross-talk
        together = list(pool.map(_replayed, kept.values()))
    assert together == [live[n] for n in kept]

    n = next(n for n in kept if n % 3 == 2)  # a flagged job returned a value
    out = subprocess.run([sys.executable, "-m", "replay._cli", "play", kept[n].id], env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == live[n] and "0 divergence(s)" in out.stderr
