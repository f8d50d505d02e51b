"""``pytest --replay-store STORE``: one test per stored run, replayed through its entry
point, with xdist; real pytest in a subprocess (issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from fixtures.emulator import Emulator, Turn
from replay._runs.store import RunStatus, open_store

ROOT = Path(__file__).resolve().parent.parent

SERVICE = textwrap.dedent('''
    import os
    import openai
    import replay

    @replay.recorded(tags=["nightly"])
    def ask(question: str, base_url: str, fail: bool = False) -> str:
        client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        prompt = os.environ.get("SVC_PROMPT", "Answer briefly.")
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[
            {"role": "system", "content": prompt}, {"role": "user", "content": question}])
        if fail:
            raise KeyError(question)
        return reply.choices[0].message.content or ""
''')


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
            "REPLAY_STORE": str(tmp_path / "runs"), **extra}


def _record(tmp_path: Path, llm: Emulator) -> None:
    (tmp_path / "svc.py").write_text(SERVICE)
    code = (f"import svc\nfor q in ('a', 'b', 'c'):\n    svc.ask(q, {llm.openai_base_url!r})\n"
            f"try:\n    svc.ask('d', {llm.openai_base_url!r}, fail=True)\n"
            "except KeyError:\n    pass\n")
    subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), cwd=tmp_path, check=True,
                   timeout=300)


def _pytest(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "empty").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA",
         "--replay-store", str(tmp_path / "runs"), *args, str(tmp_path / "empty")],
        env=_env(tmp_path, **env), cwd=tmp_path, capture_output=True, text=True, timeout=600)


def test_every_stored_run_is_a_test_and_xdist_spreads_them(
        tmp_path: Path, emulator: Callable[..., Emulator]) -> None:
    llm = emulator(Turn(text="ok", repeat=True))
    _record(tmp_path, llm)
    llm.stop()  # the runs replay from the store alone
    rows = open_store(str(tmp_path / "runs")).query()
    assert [r.status for r in rows].count(RunStatus.FAILED) == 1
    proc = _pytest(tmp_path, "-n", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout
    for row in rows:
        assert f"replay-store/{row.id}" in proc.stdout or row.id in proc.stdout

    failed = _pytest(tmp_path, "--replay-filter", "failed")
    assert failed.returncode == 0 and "1 passed" in failed.stdout, failed.stdout


def test_a_changed_prompt_fails_each_run_with_its_divergence(
        tmp_path: Path, emulator: Callable[..., Emulator]) -> None:
    llm = emulator(Turn(text="ok", repeat=True))
    _record(tmp_path, llm)
    llm.stop()
    proc = _pytest(tmp_path, "-n", "2", "--replay-filter", "entry=svc:ask,limit=2",
                   SVC_PROMPT="Answer at length.")
    assert proc.returncode == 1
    assert "2 failed" in proc.stdout, proc.stdout
    assert proc.stdout.count("diverged") >= 2 and "Answer at length." in proc.stdout


def test_a_bad_filter_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    proc = _pytest(tmp_path, "--replay-filter", "colour=red")
    assert proc.returncode == 4
    assert "unknown run filter 'colour=red'" in proc.stderr


def test_replay_drift_reports_a_changed_context_per_stored_run(
        tmp_path: Path, emulator: Callable[..., Emulator]) -> None:
    """A run that replays cleanly but was recorded in another context: ``warn``
    passes with a drift section, ``fail`` fails the run and says why."""
    llm = emulator(Turn(text="ok", repeat=True))
    (tmp_path / "svc.py").write_text(SERVICE)
    code = f"import svc\nsvc.ask('a', {llm.openai_base_url!r})\n"
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=300,
                   env=_env(tmp_path, OPENAI_MODEL="gpt-4o-mini"))
    llm.stop()
    (row,) = open_store(str(tmp_path / "runs")).query()

    same = _pytest(tmp_path, "--replay-drift", "fail", OPENAI_MODEL="gpt-4o-mini")
    assert same.returncode == 0 and "1 passed" in same.stdout, same.stdout + same.stderr

    warned = _pytest(tmp_path, "--replay-drift", "warn", OPENAI_MODEL="gpt-4o")
    assert warned.returncode == 0 and "1 passed" in warned.stdout, warned.stdout
    assert "OPENAI_MODEL" in warned.stdout and "drift" in warned.stdout

    failed = _pytest(tmp_path, "--replay-drift", "fail", OPENAI_MODEL="gpt-4o")
    assert failed.returncode == 1 and "1 failed" in failed.stdout, failed.stdout
    assert f"run {row.id} drifted" in failed.stdout and "OPENAI_MODEL" in failed.stdout
