"""A server the service tests start on 127.0.0.1 (uvicorn, hypercorn, waitress,
werkzeug, ...): a free port, the process, its log, wait for ``/health``, stop.
The ``serve`` fixture in conftest.py hands these out and stops any left running."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 240.0
"""Seconds a server may take to answer its health check (a loaded CI machine)."""


def free_port() -> int:
    """A port nothing listens on now, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A server process started from ``cmd`` (``{port}`` in it is the port it gets),
    in ``cwd`` (the repository root by default), its stderr appended to ``log``;
    running once ``health`` answered 200."""

    def __init__(self, cmd: Sequence[str], env: Mapping[str, str], log: Path,
                 health: str = "/health", cwd: Path = ROOT) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        """Where it listens."""
        self.log = log
        """Its stderr."""
        with log.open("ab") as err:
            self.proc = subprocess.Popen([c.replace("{port}", str(port)) for c in cmd],
                                         cwd=cwd, env=dict(env), stdout=subprocess.DEVNULL,
                                         stderr=err)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, log.read_text()
            try:
                if httpx.get(self.url + health, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.proc.kill()
        raise AssertionError(f"{cmd[:3]} did not start: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        """Shut it down as a process manager does (SIGTERM: the ASGI lifespan's
        shutdown runs), and wait for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
