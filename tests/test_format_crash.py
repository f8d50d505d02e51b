"""Crash safety: writers killed with SIGKILL at hundreds of random moments.

A child process writes events and prints "ack <i>" after each ``write()``
returns; the test kills it after k acks plus a random sub-millisecond delay.
Every ``.partial`` left behind must open, hold every acknowledged event (at
most one more, whose ack was not printed yet) as an exact prefix of what was
written, and report its tail as truncated.

Most kills go to writers forked from a warm server (tests/_format_child.py
serve) so 200+ kill points take seconds; a few use fresh interpreters.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import os
import pathlib
import random
import signal
import subprocess
import sys
import time
from typing import IO

import pytest
from _format_child import golden_header, make_event

from replay._cassette import iter_events, read_header
from replay._cassette.errors import CassetteError, CassetteTruncatedError
from replay._cassette.events import Event

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL")

CHILD = str(pathlib.Path(__file__).with_name("_format_child.py"))
SEED = 4242
N_FORKED = 240
N_FRESH = 6


@dataclasses.dataclass
class Kill:
    path: str
    after_acks: int
    delay_s: float
    acked: int = 0


def plan(rng: random.Random, directory: pathlib.Path, n: int, tag: str) -> list[Kill]:
    kills = []
    for i in range(n):
        k = rng.randint(0, 5) if rng.random() < 0.25 else rng.randint(0, 300)
        kills.append(Kill(str(directory / f"{tag}{i}.replay"), k, rng.uniform(0.0, 1e-3)))
    return kills


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def line(stream: IO[bytes]) -> str:
    text = stream.readline().decode()
    assert text, "child exited unexpectedly"
    return text.strip()


def wait_and_kill(out: IO[bytes], kill: Kill, pid: int) -> None:
    assert line(out) == "ready"
    while kill.acked < kill.after_acks:
        assert line(out) == f"ack {kill.acked}"
        kill.acked += 1
    spin(kill.delay_s)
    os.kill(pid, signal.SIGKILL)


def run_forked(kills: list[Kill]) -> None:
    server = subprocess.Popen([sys.executable, CHILD, "serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    assert server.stdin is not None and server.stdout is not None
    pid: int | None = None
    try:
        for kill in kills:
            server.stdin.write(kill.path.encode() + b"\n")
            server.stdin.flush()
            pid = int(line(server.stdout).split()[1])
            wait_and_kill(server.stdout, kill, pid)
            while (text := line(server.stdout)) != f"done {pid}":
                assert text == f"ack {kill.acked}"
                kill.acked += 1
            pid = None
    finally:
        if pid is not None:  # a check failed before the kill: stop the writer anyway
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        server.stdin.close()
        server.wait(timeout=30)


def run_fresh(kill: Kill) -> None:
    child = subprocess.Popen([sys.executable, CHILD, "write", kill.path], stdout=subprocess.PIPE)
    assert child.stdout is not None
    try:
        wait_and_kill(child.stdout, kill, child.pid)
        for text in child.stdout.read().decode().split():
            if text != "ack" and text.isdigit():
                assert int(text) == kill.acked
                kill.acked += 1
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


_events: list[Event] = []


def original(i: int) -> Event:
    while len(_events) <= i:
        _events.append(make_event(len(_events)))
    return _events[i]


def check(kill: Kill) -> tuple[int, str]:
    partial = kill.path + ".partial"
    assert not os.path.exists(kill.path)
    assert dataclasses.replace(read_header(partial), version=2) == golden_header()
    got = 0
    error: CassetteError | None = None
    try:
        for ev in iter_events(partial):
            assert ev == original(got), f"{partial}: event {got} differs"
            got += 1
    except CassetteError as exc:
        error = exc
    assert isinstance(error, CassetteTruncatedError), (partial, error)
    assert error.events_read == got
    assert kill.acked <= got <= kill.acked + 1, (partial, kill.acked, got)
    return got - kill.acked, error.reason


@pytest.mark.parametrize("version", [1, 2], ids=["v1", "v2-journal"])
def test_sigkill_at_random_moments_leaves_a_readable_prefix(
        version: int, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORMAT_CHILD_VERSION", str(version))
    _events.clear()
    rng = random.Random(SEED)
    forked = plan(rng, tmp_path, N_FORKED, "f")
    fresh = plan(rng, tmp_path, N_FRESH, "p")
    # two servers, one per core; their children are killed independently
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        servers = [pool.submit(run_forked, forked[k::2]) for k in range(2)]
        for kill in fresh:
            run_fresh(kill)
        for server in servers:
            server.result()  # re-raises a failed assertion from the thread
    kills = forked + fresh
    results = [check(kill) for kill in kills]
    tails = collections.Counter(reason for _, reason in results)
    print(f"\n{len(kills)} SIGKILLs after 0..{max(k.after_acks for k in kills)} acks: "
          f"all .partial files open, every acked event present "
          f"({sum(k.acked for k in kills)} acks), {sum(n for n, _ in results)} with one more "
          f"written-but-unacked event; tails: {dict(tails)}")
