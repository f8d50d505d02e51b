"""Smoke test: ``replay tui`` in a real terminal (tmux), keys in, screen read back.

``make test`` installs tmux when it is missing and it can (apt-get as root or
with passwordless sudo); the test is skipped only when tmux is still absent.
Each run uses its own tmux server socket and kills only that server.
"""

from __future__ import annotations

import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from tests import tui_samples as samples

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(
    TMUX is None, reason="tmux is not installed and could not be installed "
                         "(make test tries apt-get as root or with sudo -n)")


class Terminal:
    """A private tmux server with one 120x36 window running a command."""

    def __init__(self, command: str, sock: str) -> None:
        assert TMUX is not None
        self.tmux = TMUX
        self.sock = sock
        self.run("new-session", "-d", "-x", "120", "-y", "36", command)

    def run(self, *args: str) -> str:
        # COLUMNS / LINES (pytest sets them) would override the window size in Textual.
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TMUX")}
        return subprocess.run([self.tmux, "-L", self.sock, *args], capture_output=True,
                              text=True, check=False, timeout=10, env=env).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p")

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", *(["-l"] if literal else []), *keys)

    def wait(self, cond: Callable[[str], bool], what: str, timeout: float = 20.0) -> str:
        end = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < end:
            screen = self.screen()
            if cond(screen):
                return screen
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen}")

    def wait_for(self, *texts: str) -> str:
        return self.wait(lambda s: all(t in s for t in texts), " and ".join(map(repr, texts)))

    def close(self) -> None:
        self.run("kill-server")


@pytest.fixture
def terminal(tmp_path: pathlib.Path) -> Iterator[tuple[Terminal, pathlib.Path]]:
    path = samples.write(tmp_path / "trip.replay", samples.agent_run())
    done = tmp_path / "exit-code"
    replay_bin = os.path.join(os.path.dirname(sys.executable), "replay")
    command = (f"{shlex.quote(replay_bin)} tui {shlex.quote(path)}; "
               f"echo $? > {shlex.quote(str(done))}; sleep 30")
    term = Terminal(command, f"replay-tui-test-{os.getpid()}")
    try:
        yield term, done
    finally:
        term.close()


def test_replay_tui_in_tmux(terminal: tuple[Terminal, pathlib.Path]) -> None:
    term, done = terminal
    term.wait_for("trip.replay", "21 events", "1/21", "Search")
    time.sleep(0.3)  # input mode is on once the footer shows; give it a moment anyway
    term.keys("j", "j", "j")
    screen = term.wait_for("4/21", "#3 http")
    assert "gpt-4o-mini-2024-07-18" in screen and "tokens 812 in" in screen
    term.keys("e")
    term.wait_for("9/21", "payment declined", "Traceback")
    term.keys("/")
    term.keys("declined", literal=True)
    term.keys("Enter")
    term.wait_for("/declined: 1/2 matches")
    term.keys("n")
    term.wait_for("/declined: 2/2 matches", "12/21")
    term.keys("2")
    term.wait_for("answer at this step", "The booking failed")
    term.keys("3", ".", ".", ".")
    term.wait_for("chunk 3/13", "paused")
    term.keys("?")
    term.wait_for("Keys", "Previous divergence")
    # Esc and the next key sent together would read as Alt+key: wait in between.
    term.keys("Escape")
    term.wait(lambda s: "Esc closes" not in s, "the help screen to close")
    term.keys("s")
    term.wait_for("Events per channel", "Model calls per model")
    term.keys("Escape")
    term.wait(lambda s: "Events per channel" not in s, "the stats screen to close")
    term.keys("q")
    deadline = time.monotonic() + 20
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done.read_text().strip() == "0"
