"""``replay demo`` in a real terminal: the TUI opens at the first bad event."""

from __future__ import annotations

import os
import pathlib
import shlex
import sys
import time

import pytest

from tests.test_tui_tmux import TMUX, Terminal

pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed and could not be "
                                "installed (make test tries apt-get as root or sudo -n)")
ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_demo_opens_the_tui_on_the_failing_run_at_its_first_bad_event(
        tmp_path: pathlib.Path) -> None:
    done = tmp_path / "exit-code"
    replay_bin = os.path.join(os.path.dirname(sys.executable), "replay")
    command = (f"cd {shlex.quote(str(ROOT))} && {shlex.quote(replay_bin)} demo --dir "
               f"{shlex.quote(str(tmp_path / 'demo'))}; echo $? > {shlex.quote(str(done))}; "
               "sleep 30")
    term = Terminal(command, f"replay-demo-test-{os.getpid()}")
    try:
        screen = term.wait(lambda s: "run-3.replay" in s and "lookup_order" in s
                           and "4990" in s, "the demo's TUI at the stale lookup", timeout=90)
        assert "eu-2" in screen  # the detail pane shows the stale replica's answer
        # The two runs are aligned in a worker: until it is done, 'c' only says so.
        deadline = time.monotonic() + 60
        while True:
            time.sleep(0.3)
            term.keys("c")
            try:
                screen = term.wait(lambda s: "first divergence" in s and "↔" in s,
                                   "the diff screen", timeout=3)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        assert "run-1.replay" in screen
        term.keys("Escape")
        time.sleep(0.5)  # Esc and the next key sent together would read as Alt+key
        term.keys("q")
        deadline = time.monotonic() + 20
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done.read_text().strip() == "0"
    finally:
        term.close()
