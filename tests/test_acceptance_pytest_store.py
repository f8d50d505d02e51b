"""``pytest --replay-store`` on the runs a worker leaves in production: an anthropic
SDK job whose divergence the SDK wraps in its own error, and a run whose process
was killed (acceptance of issue 17; real pytest, xdist and SDK in subprocesses)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from fixtures.emulator import Emulator, Turn
from replay._runs.store import RunStatus, open_store

ROOT = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "WORKER_PROMPT"}
    return {**env, "PYTHONPATH": str(ROOT), "REPLAY_STORE": str(tmp_path / "runs"), **extra}


def _pytest(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "empty").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA",
         "--replay-store", str(tmp_path / "runs"), *args, str(tmp_path / "empty")],
        env=_env(tmp_path, **env), cwd=tmp_path, capture_output=True, text=True, timeout=600)


def _stored(tmp_path: Path, llm: Emulator) -> None:
    """Two summaries, then a ``hold`` job killed mid-run (a ``crashed`` run, taken in
    by the next process that records into the store)."""
    code = ("from fixtures.service import worker\n"
            f"worker.summarize('report one', {llm.anthropic_base_url!r})\n"
            f"worker.summarize('report two', {llm.anthropic_base_url!r})\n")
    subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), cwd=tmp_path,
                   check=True, timeout=300)
    hold = "from fixtures.service import worker; worker.hold(4, wait=True)"
    proc = subprocess.Popen([sys.executable, "-c", hold], env=_env(tmp_path), cwd=tmp_path,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    again = "from fixtures.service import worker; worker.hold(2)"  # takes the crashed run in
    subprocess.run([sys.executable, "-c", again], env=_env(tmp_path), cwd=tmp_path,
                   capture_output=True, check=True, timeout=300)


def test_a_changed_prompt_reports_the_divergence_the_sdk_wrapped_and_a_crashed_run_passes(
        tmp_path: Path, emulator: Callable[..., Emulator]) -> None:
    llm = emulator(Turn(text="One line.", repeat=True))
    _stored(tmp_path, llm)
    llm.stop()  # the runs replay from the store alone
    rows = open_store(str(tmp_path / "runs")).query()
    assert sorted(r.status.value for r in rows) == ["crashed", "ok", "ok", "ok"]

    same = _pytest(tmp_path, "-n", "2")
    # the crashed run replays every event its process recorded before it died
    assert same.returncode == 0, same.stdout + same.stderr
    assert "4 passed" in same.stdout, same.stdout
    failed = _pytest(tmp_path, "--replay-filter", "failed")  # crashed runs are "failed"
    assert failed.returncode == 0 and "1 passed" in failed.stdout, failed.stdout

    changed = _pytest(tmp_path, "-n", "2", "--replay-filter", "entry=summarize",
                      WORKER_PROMPT="Summarize in French.")
    assert changed.returncode == 1
    assert "2 failed" in changed.stdout, changed.stdout
    # the divergence itself, not anthropic's "APIConnectionError: Connection error."
    assert changed.stdout.count("diverged") >= 2, changed.stdout
    assert changed.stdout.count("body.system: 'Summarize in one line.' -> "
                                "'Summarize in French.'") >= 2, changed.stdout
    crashed = next(r for r in rows if r.status is RunStatus.CRASHED)
    assert crashed.error is not None and "died" in crashed.error
