"""A queue worker: threads taking jobs off a queue, each job a ``@replay.recorded``
run (fixtures/service/worker.py ``job``: executor fan-out, a streamed openai
answer, a print) kept only when it failed. Every kept run replays alone, again
and again, to what the job returned or raised live, and ``replay play RUN`` in a
fresh process prints what the job printed live (acceptance of issue 17)."""

from __future__ import annotations

import contextlib
import io
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import replay
from fixtures.emulator import Emulator, Turn
from fixtures.service import worker
from replay._runs.store import RunStatus, open_store

ROOT = Path(__file__).resolve().parent.parent


def test_threads_of_a_queue_worker_keep_their_failed_jobs_and_each_replays(
        tmp_path: Path, emulator: Callable[..., Emulator],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = str(tmp_path / "runs")
    monkeypatch.setenv("REPLAY_STORE", store)
    llm = emulator(Turn(text="All in order.", chunks=["All ", "in ", "order."], repeat=True))
    jobs: queue.Queue[int] = queue.Queue()
    for n in range(12):
        jobs.put(n)
    live: dict[int, Any] = {}

    def work() -> None:
        while True:
            try:
                n = jobs.get_nowait()
            except queue.Empty:
                return
            try:
                live[n] = worker.job(n, llm.openai_base_url)
            except LookupError as exc:
                live[n] = ("raised", str(exc))

    with contextlib.redirect_stdout(io.StringIO()) as printed:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    llm.stop()
    lines = {int(line.split(":")[0][4:]): line for line in printed.getvalue().splitlines()}
    assert sorted(lines) == list(range(12))
    rows = open_store(store).query()
    kept = {int(r.attrs.get("flag", r.error or "").split("job ")[1].split()[0]): r for r in rows}
    assert sorted(kept) == [n for n in range(12) if n % 3]  # the 4 plain returns dropped
    assert all(r.status is RunStatus.FAILED and r.tags == ("queue",) for r in rows)
    for n, row in kept.items():
        for _ in range(2):
            run = replay.play(row.id, unused="fail")
            try:
                got: Any = run.invoke()
            except LookupError as exc:
                got = ("raised", str(exc))
            assert got == live[n], n
            assert run.result is not None and run.result.ok
    n = next(n for n in kept if n % 3 == 1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "replay._cli", "play", kept[n].id], env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 1 and "LookupError" in out.stderr
    assert out.stdout == lines[n] + "\n"  # what the job printed live, byte for byte
