"""The short paths of issue 16: value reads (``Session.read``) are recorded byte for
byte as an Event written the long way would be, replayed to the same values, and
every case they do not cover still goes the long way; a tool's arguments are
bound without ``inspect`` to what ``inspect`` gives."""

from __future__ import annotations

import inspect
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import replay
from replay._capture.tools import _binder
from replay._capture.values import canonical
from replay._cassette import CassetteWriter, iter_events, read_cassette
from replay._cassette.index import BATCH


def _reads(n: int) -> list[float | int]:
    out: list[float | int] = []
    for i in range(n):
        out.append(time.time())
        if i % 3 == 0:
            out.append(random.random())
        if i % 5 == 0:
            out.append(time.time_ns())
    return out


def test_value_reads_are_written_as_the_long_path_writes_them(tmp_path: Path) -> None:
    path = tmp_path / "fast.replay"
    n = BATCH + 100  # past one index batch
    run = replay.record(path)
    with run:
        live = _reads(n)
    writer = run._writer
    assert writer is not None and writer.values_written == len(live)  # the short path ran
    assert run.result is not None and run.result.recorded == len(live)
    cassette = read_cassette(path)
    events = list(cassette.events)
    assert [e.response for e in events] == live
    assert {e.channel for e in events} == {"clock", "random"}
    assert all(e.site is not None and e.site.function == "_reads" for e in events)
    # The same events through CassetteWriter.write give the same file, byte for byte.
    again = tmp_path / "slow.replay"
    with CassetteWriter(again, cassette.header) as slow:
        for event in events:
            slow.write(event)
    assert slow.values_written == 0
    assert again.read_bytes() == path.read_bytes()


def test_infrastructure_reads_pass_through_unrecorded(tmp_path: Path) -> None:
    """A log record's time (like an HTTP cookie's) is no agent input: not recorded, and
    the second read at the same line is answered from Session.read's cache of the site,
    in record and in replay alike."""
    import logging

    seen: list[float] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.created)

    log = logging.getLogger("test-infra-reads")
    log.addHandler(Keep())
    log.propagate = False

    def agent() -> float:
        for _ in range(3):
            log.warning("tick")
        return time.time()

    path = tmp_path / "infra.replay"
    with replay.record(path):
        recorded = agent()
    events = list(read_cassette(path).events)
    assert [e.channel for e in events] == ["clock"]
    assert events[0].response == recorded
    assert len(seen) == 3 and all(t > 0 for t in seen)
    with replay.play(path):
        assert agent() == recorded
    assert len(seen) == 6


def test_value_reads_replay_to_the_recorded_values(tmp_path: Path) -> None:
    path = tmp_path / "c.replay"
    with replay.record(path):
        live = _reads(50)
    for _ in range(3):
        with replay.play(path) as run:
            again = _reads(50)
        assert again == live
        assert [type(x) for x in again] == [type(x) for x in live]
        assert run.result is not None and run.result.ok


def _at_one_line() -> float:
    return time.time()


def _at_another_line() -> float:
    return time.time()


def test_a_read_at_another_site_still_diverges(tmp_path: Path) -> None:
    path = tmp_path / "c.replay"
    with replay.record(path):
        _at_one_line()
    with pytest.raises(replay.DivergenceError) as info, replay.play(path):
        _at_another_line()
    assert info.value.divergence.other_site


def test_reads_in_threads_and_tools_keep_their_tasks_and_parents(tmp_path: Path) -> None:
    path = tmp_path / "c.replay"

    @replay.tool
    def stamp() -> float:
        return time.time()  # nested in the tool: the long path, with its parent

    def worker(out: list[float]) -> None:
        out.extend(time.time() for _ in range(200))

    def run_all() -> tuple[list[float], list[float], float]:
        a: list[float] = []
        b: list[float] = []
        threads = [threading.Thread(target=worker, args=(x,)) for x in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return a, b, stamp()

    with replay.record(path):
        live = run_all()
    events = list(read_cassette(path).events)
    assert sorted(e.seq for e in events) == list(range(len(events)))  # no seq twice
    nested = [e for e in events if e.parent is not None]
    assert len(nested) == 1 and nested[0].channel == "clock"
    with replay.play(path):
        assert run_all() == live


def _slow_bind(func: Callable[..., object], *args: object, **kwargs: object) -> Any:
    try:
        bound = inspect.signature(func).bind(*args, **kwargs)
    except TypeError:
        return {"args": {"*": canonical(list(args)), "**": canonical(kwargs)}}
    return {"args": canonical(dict(bound.arguments))}


def test_tool_arguments_are_bound_as_inspect_binds_them() -> None:
    def f(a: int, b: int = 2, c: str = "x") -> None: ...

    def g(a: int, *rest: int, key: str = "k", **more: int) -> None: ...

    calls: list[tuple[tuple[object, ...], dict[str, object]]] = [
        ((1,), {}), ((1, 5), {}), ((1,), {"c": "y"}), ((), {"a": 1, "c": "y", "b": 3}),
        ((1, 2, "z"), {}), ((1, 2, "z", 4), {}), ((), {}), ((1,), {"a": 2}),
        ((1,), {"nope": 3}), ((1,), {"b": 3, "a": 1}),
    ]
    for func in (f, g):
        bind = _binder(func)[0]
        for args, kwargs in calls:
            assert bind(*args, **kwargs) == _slow_bind(func, *args, **kwargs), (func, args)
            fast: Any = bind(*args, **kwargs)
            assert list(fast["args"]) == list(_slow_bind(func, *args, **kwargs)["args"])


_KILLED_CHILD = """
import sys, time, random
import replay
run = replay.record(sys.argv[1])
with run:
    out = sys.stdout
    out.write("ready\\n")
    out.flush()
    while True:
        value = time.time() if random.random() < 2 else 0.0  # two reads, both acked
        out.write(f"ack {value!r}\\n")
        out.flush()
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("after", [1, 37, 500])
def test_a_read_that_returned_survives_sigkill(tmp_path: Path, after: int) -> None:
    path = tmp_path / "killed.replay"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_CHILD, str(path)],
                             stdout=subprocess.PIPE)
    assert child.stdout is not None
    acked: list[float] = []
    try:
        assert child.stdout.readline() == b"ready\n"
        while len(acked) < after:
            line = child.stdout.readline().split()
            acked.append(float(line[1]))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        acked += [float(t) for t in child.stdout.read().split() if t != b"ack"]
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    partial = str(path) + ".partial"
    with pytest.raises(replay.CassetteTruncatedError):
        list(iter_events(partial))
    got = read_cassette(partial, strict=False)
    assert got.damage is not None
    clock = [e.response for e in sorted(got.events, key=lambda e: e.seq)
             if e.channel == "clock"]
    assert clock[:len(acked)] == acked  # every acknowledged read, in order
    assert len(clock) - len(acked) <= 1  # at most the one read not yet acked


def _each(readers: tuple[Callable[[], Any], ...]) -> list[Any]:
    return [f() for f in readers]  # one instruction calls every reader


def test_reads_of_several_readers_at_one_instruction(tmp_path: Path) -> None:
    """Session.read's cache keys a site by its code and instruction; another reader
    called by the same instruction is told apart by the entry, recorded and replayed as
    its own read."""
    path = tmp_path / "c.replay"
    def readers() -> tuple[Callable[[], Any], ...]:  # the patched ones, inside a run
        return (time.time, random.random, time.time_ns, time.time, random.random)

    with replay.record(path):
        live = _each(readers()) + _each(readers())
    events = list(read_cassette(path).events)
    assert [e.channel for e in events] == ["clock", "random", "clock", "clock", "random"] * 2
    assert [e.response for e in events] == live
    with replay.play(path) as run:
        again = _each(readers()) + _each(readers())
    assert again == live and [type(x) for x in again] == [type(x) for x in live]
    assert run.result is not None and run.result.ok
