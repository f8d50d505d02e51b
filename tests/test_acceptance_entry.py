"""``replay play RUN`` (no program) on runs a user meets in production: a run whose
divergence the SDK wrapped in its own error, and a run its process died in
(acceptance of issue 17, with a worker job the other tests do not use)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import replay
from fixtures.emulator import Emulator, Turn
from fixtures.service import worker
from replay._runs.store import RunStatus, open_store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.chdir(tmp_path)
    url = str(tmp_path / "runs")
    monkeypatch.setenv("REPLAY_STORE", url)
    monkeypatch.delenv("WORKER_PROMPT", raising=False)
    yield url


def _play(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "replay._cli", "play", *args], env=full,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=180)


def test_a_divergence_the_sdk_wrapped_is_reported_once_after_the_traceback(
        store: str, emulator: Callable[..., Emulator]) -> None:
    llm = emulator(Turn(text="One line.", repeat=True))
    live = worker.summarize("a long report", llm.anthropic_base_url)
    llm.stop()
    same = _play("last")
    assert same.returncode == 0, same.stderr
    assert f'"job": "{live["job"]}"' in same.stdout
    changed = _play("last", env={"WORKER_PROMPT": "Summarize in French."})
    assert changed.returncode == 1
    err = changed.stderr
    # anthropic's APIConnectionError ended the entry: its traceback is shown, with the
    # divergence in it cut to one line; the report itself comes once, at the end
    assert "APIConnectionError" in err
    assert err.count("differences (expected -> actual)") == 1, err
    assert err.rindex("differences (expected -> actual)") > err.rindex("Traceback")
    assert "(the report is printed at the end)" in err
    assert err.rstrip().endswith("1 divergence(s) (reported above)"), err


def test_a_crashed_run_is_not_called_and_says_why(store: str) -> None:
    code = "from fixtures.service import worker; worker.hold(5, wait=True)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # the next process that records into the store takes the crashed run in
    subprocess.run([sys.executable, "-c", code.replace(", wait=True", "")], env=env,
                   capture_output=True, check=True, timeout=120)
    crashed = next(r for r in open_store(store).query() if r.status is RunStatus.CRASHED)
    out = _play(crashed.id)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("replay: the entry point was not called: "), lines
    assert "truncated" in lines[0] and "--allow-damaged" in lines[0]
    assert out.stdout == ""
    damaged = _play(crashed.id, "--allow-damaged")  # what it holds replays
    assert damaged.returncode == 0, damaged.stderr
    assert damaged.stdout.startswith("ready\n") and "Traceback" not in damaged.stderr
    with pytest.raises(replay.CassetteTruncatedError):
        replay.play(crashed.id).invoke()


UNGUARDED = '''
import openai
import replay

@replay.recorded(tags=["script"])
def ask(question: str, base_url: str) -> str:
    client = openai.OpenAI(base_url=base_url, api_key="sk-test-abcdefghijklmnop1234",
                           max_retries=0)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "user", "content": question}])
    return reply.choices[0].message.content or ""

print(ask("what now?", BASE_URL))  # no `if __name__ == "__main__":` guard
'''


def test_a_script_that_calls_its_entry_when_imported_is_not_run_live_on_replay(
        store: str, tmp_path: Path, emulator: Callable[..., Emulator]) -> None:
    llm = emulator(Turn(text="Ship it.", repeat=True))
    script = tmp_path / "job.py"
    script.write_text(UNGUARDED.replace("BASE_URL", repr(llm.openai_base_url)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, str(script)], env=env, check=True, timeout=120,
                   capture_output=True)
    [row] = open_store(store).query()
    assert row.entry == "__main__:ask" and len(llm.requests) == 1
    # replaying imports the script: its top-level call must not run the agent live
    out = _play("last")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert 'if __name__ == "__main__":' in out.stderr, out.stderr
    assert len(llm.requests) == 1  # the model was not asked again
    assert len(open_store(store).query()) == 1  # and no new run was recorded
    with pytest.raises(replay.ReplayError, match="__name__"):
        replay.play("last").invoke()
    assert len(llm.requests) == 1 and len(open_store(store).query()) == 1
