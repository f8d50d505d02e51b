"""Breakpoints: ``replay play --break N`` stops the real agent at event N, in its own frame."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import replay
from fixtures.agents import core_agent

ROOT = Path(__file__).resolve().parent.parent
AGENT = str(ROOT / "fixtures" / "agents" / "core_agent.py")
HERE = str(Path(__file__).resolve().parent)


def record_stop(frame: FrameType | None = None, event: replay.Event | None = None) -> None:
    """A debugger hook for ``PYTHONBREAKPOINT``: note where it was opened, and go on."""
    assert frame is not None
    with open(os.environ["BP_OUT"], "a", encoding="utf-8") as f:
        f.write(json.dumps({"file": frame.f_code.co_filename, "line": frame.f_lineno,
                            "function": frame.f_code.co_name,
                            "city": frame.f_locals.get("city"),
                            "seq": event.seq if event is not None else None}) + "\n")


def line_of(path: str, text: str) -> int:
    with open(path, encoding="utf-8") as f:
        return next(i for i, line in enumerate(f, 1) if text in line)


def cli(*args: str, env: dict[str, str] | None = None,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), HERE]))
    full.pop("PYTHONBREAKPOINT", None)
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "replay._cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env=full, input=stdin)


@pytest.fixture(scope="module")
def cassette(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("bp") / "core.replay"
    rec = cli("record", "-o", str(path), "--", "python", AGENT, "--sleep", "0.2")
    assert rec.returncode == 0, rec.stderr
    return path, rec.stdout


def seq_of(path: Path, channel: str) -> int:
    return next(e.seq for e in replay.load(path).events if e.channel == channel)


def test_break_opens_the_hook_in_the_agents_frame(cassette: tuple[Path, str],
                                                  tmp_path: Path) -> None:
    path, recorded = cassette
    n = seq_of(path, "tool:get_weather")
    out = tmp_path / "stops.jsonl"
    p = cli("play", str(path), "--break", str(n), "--unused", "fail", "--", "python", AGENT,
            "--sleep", "0.2",
            env={"PYTHONBREAKPOINT": "test_breakpoint.record_stop", "BP_OUT": str(out)})
    assert p.returncode == 0, p.stderr
    assert p.stdout == recorded  # the run went on, unchanged
    stops = [json.loads(line) for line in out.read_text().splitlines()]
    assert stops == [{"file": AGENT, "line": line_of(AGENT, "weather = get_weather(city)"),
                      "function": "run", "city": "Paris", "seq": n}]
    assert f"breakpoint: event #{n} tool:get_weather" in p.stderr


def test_break_opens_pdb_at_the_calling_line(cassette: tuple[Path, str]) -> None:
    path, _ = cassette
    n = seq_of(path, "tool:search_flights")
    p = cli("play", str(path), "--break", str(n), "--", "python", AGENT, "--sleep", "0.2",
            stdin="p (city, dest)\nc\n")
    assert p.returncode == 0, p.stderr
    line = line_of(AGENT, "flights = search_flights(")
    assert f"> {AGENT}({line})run()" in p.stdout
    assert "('Paris', " in p.stdout


def test_pythonbreakpoint_0_disables(cassette: tuple[Path, str], tmp_path: Path) -> None:
    path, recorded = cassette
    p = cli("play", str(path), "--break", str(seq_of(path, "tool:book")), "--", "python",
            AGENT, "--sleep", "0.2", env={"PYTHONBREAKPOINT": "0"})
    assert p.returncode == 0 and p.stdout == recorded
    assert "breakpoint" not in p.stderr


def test_unreachable_breakpoints_are_refused_before_running(cassette: tuple[Path, str]) -> None:
    path, _ = cassette
    p = cli("play", str(path), "--break", "99999", "--", "python", AGENT)
    assert p.returncode != 0 and "has no event #99999" in p.stderr
    events = sorted(replay.load(path).events, key=lambda e: e.seq)
    sleep = next(e for e in events if e.channel == "sleep")
    p = cli("play", str(path), "--break", str(sleep.seq), "--", "python", AGENT)
    assert p.returncode != 0 and "which replay skips; break at #" in p.stderr
    nested = next(e for e in events if e.parent is not None)
    p = cli("play", str(path), "--break", str(nested.seq), "--", "python", AGENT)
    assert p.returncode != 0 and f"break at #{nested.parent}" in p.stderr


def test_break_in_process_uses_sys_breakpointhook(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "inproc.replay"
    with replay.record(path):
        core_agent.run("Oslo", 0.0)
    n = seq_of(path, "tool:get_weather")
    seen: list[tuple[str, int, Any]] = []

    def hook(frame: FrameType, event: replay.Event | None = None) -> None:
        seen.append((frame.f_code.co_filename, frame.f_lineno, event and event.seq))

    monkeypatch.setattr(sys, "breakpointhook", hook)
    with replay.play(path, break_at=n, unused="fail"):
        core_agent.run("Oslo", 0.0)
    assert seen == [(core_agent.__file__, line_of(AGENT, "weather = get_weather(city)"), n)]
    with pytest.warns(RuntimeWarning, match="never asked for event"):
        with replay.play(path, break_at=[n, 10**6], unused="fail"):
            core_agent.run("Oslo", 0.0)
