"""``replay play --pace``: recorded sleeps at once, at the recorded pace or at a factor;
the summary line every replay ends with; ``replay diff`` counting every model call.

Timing is read the way a user would: what the program measures with its own
monotonic clock (not an input, so never replayed), and the summary line. Only
order-of-magnitude bounds: a skipped 3 s sleep against a taken one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import openai
import pytest

import replay
from fixtures.emulator import Emulator, Turn
from replay._cli.run import timing

ROOT = Path(__file__).resolve().parent.parent
NAP = 1.5

PROGRAM = f'''
import asyncio, sys, time


async def nap():
    await asyncio.sleep({NAP})

t = time.perf_counter()
time.sleep({NAP})
asyncio.run(nap())
sys.stderr.write(f"slept {{time.perf_counter() - t:.3f}}\\n")
print("woke at", time.time())  # a clock read: the recorded one on every replay
'''


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "replay._cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env=env)


@pytest.fixture(scope="module")
def sleepy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    d = tmp_path_factory.mktemp("pace")
    program, cassette = d / "sleepy.py", d / "sleepy.replay"
    program.write_text(PROGRAM)
    rec = cli("record", "-o", str(cassette), "--", "python", str(program))
    assert rec.returncode == 0, rec.stderr
    return program, cassette, rec.stdout


def _play(sleepy: tuple[Path, Path, str], *pace: str) -> tuple[float, str]:
    program, cassette, stdout = sleepy
    p = cli("play", str(cassette), *pace, "--", "python", str(program))
    assert p.returncode == 0, p.stderr
    assert p.stdout == stdout  # byte-identical, whatever the pace
    slept = float(re.search(r"slept ([\d.]+)", p.stderr).group(1))  # type: ignore[union-attr]
    summary = p.stderr.splitlines()[-1]
    assert summary.startswith("replay: served "), p.stderr
    return slept, summary


def test_instant_is_the_default_and_says_how_much_faster(sleepy: tuple[Path, Path, str]
                                                          ) -> None:
    slept, summary = _play(sleepy)
    assert slept < NAP  # two sleeps of NAP s each, skipped
    m = re.fullmatch(r"replay: served (\d+) events in ([\d.]+) s, ([\d.]+)x faster than "
                     r"the recorded ([\d.]+) s; 0 unused, 0 divergence\(s\)", summary)
    assert m is not None, summary
    assert float(m.group(4)) >= 2 * NAP and int(m.group(1)) >= 1  # the clock read
    again, _ = _play(sleepy, "--pace", "instant")
    assert again < NAP


def test_recorded_pace_takes_the_recorded_time(sleepy: tuple[Path, Path, str]) -> None:
    slept, summary = _play(sleepy, "--pace", "recorded")
    assert slept >= 2 * NAP * 0.95
    took = float(re.search(r" in ([\d.]+) s", summary).group(1))  # type: ignore[union-attr]
    assert took >= 2 * NAP * 0.95


def test_a_speed_factor_divides_the_sleeps(sleepy: tuple[Path, Path, str]) -> None:
    slept, _ = _play(sleepy, "--pace", "3")
    assert slept >= 2 * NAP / 3 * 0.95


def test_a_bad_pace_is_refused_before_the_program_runs(sleepy: tuple[Path, Path, str]
                                                       ) -> None:
    program, cassette, _ = sleepy
    for bad in ("fast", "0", "-2"):
        p = cli("play", str(cassette), "--pace", bad, "--", "python", str(program))
        assert p.returncode == 2 and "--pace" in p.stderr and "slept" not in p.stderr


def test_diff_counts_streamed_calls_without_usage(tmp_path: Path,
                                                  emulator: Callable[..., Emulator]) -> None:
    emu = emulator(Turn(text="One."), Turn(text="Two."))
    client = openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-test", max_retries=0)
    path = tmp_path / "two.replay"
    with replay.record(path):
        for ask in ("one?", "two?"):
            for _ in client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": ask}], stream=True):
                pass  # no stream_options: the chunks carry no usage
    d = replay.diff(path, path)
    assert d.left_usage.calls == 2 and d.right_usage.calls == 2
    assert "2 model calls" in d.report()
    p = cli("diff", str(path), str(path))
    assert "2 model calls" in p.stdout


def test_a_replay_slower_than_its_recording_is_not_called_slower() -> None:
    """A replay in a fresh process counts its imports, the in-process recording
    did not: the summary gives both figures instead of "10.5x slower"."""
    slow = timing({"elapsed_ns": 2_260_000_000, "recorded_ns": 210_000_000})
    assert slow == (" in 2.26 s (the recorded events span 0.21 s; a replay's time also "
                    "counts the program's start-up)")
    assert "slower" not in slow
    assert timing({"elapsed_ns": 410_000_000, "recorded_ns": 2_160_000_000}) == (
        " in 0.41 s, 5.3x faster than the recorded 2.16 s")
    assert timing({"elapsed_ns": 1_000_000_000, "recorded_ns": 1_010_000_000}) == (
        " in 1.00 s, as fast as the recorded 1.01 s")
    assert timing({"elapsed_ns": 5, "recorded_ns": 0}) == " in 0.00 s"
    assert timing({}) == ""
