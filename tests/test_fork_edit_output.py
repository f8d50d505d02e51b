"""Fork and live-edit output replays strictly, with no warning (docs/fork-and-edit.md).

The demo's failing run (a stale replica row makes the agent refund 4990.00) is
edited to the real order total and replayed live, and forked live at the order
lookup; each output is then replayed strictly: no warning, no unused event,
the same stdout. Before, the live output appended the parent's unused events
(the stale ``issue_refund(amount=4990.0)`` among them), so replaying it warned.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import replay
from fixtures.agents import support_agent
from fixtures.emulator import Emulator, Script
from replay._cassette import read_cassette

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "fixtures" / "scripts" / "support.json"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PARCELLY_REPLICA="us-1")
    return subprocess.run([sys.executable, "-m", "replay._cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env=env)


@pytest.fixture
def stale_run(tmp_path: Path) -> Path:
    """The demo's failing run: the lookup read the stale replica (total 4990.0)."""
    path = tmp_path / "stale.replay"
    with Emulator(Script.load(SCRIPT)) as emu, replay.record(path):
        os.environ["PARCELLY_REPLICA"] = "eu-2"
        try:
            out = support_agent.run(support_agent.client_for(emu.openai_base_url))
        finally:
            del os.environ["PARCELLY_REPLICA"]
    assert out.refunded == pytest.approx(4990.0)
    return path


def _lookup(path: Path) -> int:
    return next(e.seq for e in read_cassette(path).events if e.channel == "tool:lookup_order")


def _replays_strictly(output: Path, program: list[str], live_stdout: str) -> None:
    again = cli("play", str(output), "--unused", "fail", *program)
    assert again.returncode == 0, again.stderr
    assert "Warning" not in again.stderr and "diverged" not in again.stderr
    assert "0 unused, 0 divergence(s)" in again.stderr
    assert again.stdout == live_stdout
    refunds = [e.request for e in read_cassette(output).events
               if e.channel == "tool:issue_refund"]
    assert refunds == [{"args": {"order_id": "A-1042", "amount": 49.9}}]  # no stale 4990.0


def test_live_edit_output_replays_strictly(stale_run: Path, tmp_path: Path) -> None:
    what_if = tmp_path / "what-if.replay"
    ed = cli("edit", str(stale_run), "--event", str(_lookup(stale_run)), "--set", "total=49.9",
             "-o", str(what_if))
    assert ed.returncode == 0, ed.stderr
    after = tmp_path / "after.replay"
    with Emulator(Script.load(SCRIPT)) as emu:
        program = ["--", "python", "-m", "fixtures.agents.support_agent",
                   "--base-url", emu.openai_base_url]
        live = cli("play", str(what_if), "--live", "-o", str(after), *program)
        assert live.returncode == 0, live.stderr
        assert "refunded 49.90 USD" in live.stdout
        # The recorded path the edit turned away from is not a divergence of a live run.
        assert "Warning" not in live.stderr and "0 divergence(s)" in live.stderr
        _replays_strictly(after, program, live.stdout)


def test_live_fork_output_replays_strictly(stale_run: Path, tmp_path: Path) -> None:
    forked = tmp_path / "fork.replay"
    with Emulator(Script.load(SCRIPT)) as emu:
        program = ["--", "python", "-m", "fixtures.agents.support_agent",
                   "--base-url", emu.openai_base_url]
        live = cli("fork", str(stale_run), "--at", str(_lookup(stale_run)), "--live",
                   "-o", str(forked), *program)
        assert live.returncode == 0, live.stderr
        assert "refunded 49.90 USD" in live.stdout  # the lookup ran live, on replica us-1
        assert "Warning" not in live.stderr
        _replays_strictly(forked, program, live.stdout)
