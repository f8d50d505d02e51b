"""Concurrent sessions: what a patched call costs code that belongs to no run.

While any session is open the patches are in place for the whole process; a
call made outside every run (another request of the service, a library's own
thread) must pass through at near-native cost. Each call is timed unpatched,
then patched from a thread outside the run while a run records in another
thread, best of ``--repeat`` loops of ``--n`` calls, in the same run, CPU time.

    python bench/bench_sessions.py [--n 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _goals import goal

import replay
from replay._capture import patch as _patch
from replay._capture.matcher import Matcher
from replay._capture.session import RecordMode, Session, activate, deactivate
from replay._cassette.events import Event

CALLS: dict[str, Callable[[], Callable[[], object]]] = {
    # Looked up at measuring time: the patched function once the patches are in.
    "time.time()": lambda: time.time,
    "time.time_ns()": lambda: time.time_ns,
    "random.random()": lambda: random.random,
    "datetime.now()": lambda: datetime.datetime.now,
    "uuid.uuid4()": lambda: uuid.uuid4,
}


def per_call(fn: Callable[[], object], n: int, repeat: int) -> float:
    """Best of ``repeat`` loops of ``n`` calls, CPU ns per call (loop overhead
    included, the same on both sides; CPU time, so other processes on a shared
    machine do not count)."""
    best = float("inf")
    r = range(n)
    for _ in range(repeat):
        t0 = time.process_time_ns()
        for _ in r:
            fn()
        best = min(best, (time.process_time_ns() - t0) / n)
    return best


def measure_all(n: int, repeat: int) -> dict[str, float]:
    return {label: per_call(get(), n // 10 if "uuid" in label else n, repeat)
            for label, get in CALLS.items()}


def capture_side(n: int, repeat: int) -> None:
    """What the capture layer itself costs per clock read, the cassette writer left
    out (its events go to a list): call-site walk, task, sequence number, Event."""
    events: list[Event] = []
    session = Session(RecordMode.RECORD, sink=events.append)
    token = activate(session)
    _patch.install()
    try:
        rec = per_call(time.time, n, repeat)
    finally:
        deactivate(session, token)
        _patch.uninstall()
    recorded = events[:n]
    assert len({e.site for e in recorded}) == 1
    best = float("inf")
    for _ in range(repeat):
        player = Session(RecordMode.REPLAY, matcher=Matcher(recorded))
        token = activate(player)
        _patch.install()
        try:
            best = min(best, per_call(time.time, n, 1))  # the recorded call site
        finally:
            deactivate(player, token)
            _patch.uninstall()
    plain = per_call(time.time, n, repeat)
    print(f"\ntime.time() in a run, capture layer only (no cassette writer), CPU ns per read:"
          f"\n  plain {plain:,.0f}   recorded {rec:,.0f}   replayed {best:,.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    assert not _patch.installed()
    # Interleave plain and patched rounds so machine load hits both sides alike.
    plain: dict[str, float] = {}
    patched: dict[str, float] = {}
    opened = threading.Event()
    done = threading.Event()
    with tempfile.TemporaryDirectory() as tmp:
        def run() -> None:
            with replay.record(os.path.join(tmp, "other.replay")):
                time.time()
                opened.set()
                done.wait()

        for _ in range(2):
            for k, v in measure_all(args.n, args.repeat).items():
                plain[k] = min(plain.get(k, v), v)
            opened.clear()
            done.clear()
            t = threading.Thread(target=run)
            t.start()
            opened.wait()
            assert _patch.installed() and replay.load is not None
            for k, v in measure_all(args.n, args.repeat).items():
                patched[k] = min(patched.get(k, v), v)
            done.set()
            t.join()
        events = replay.load(os.path.join(tmp, "other.replay")).events
    assert len(events) == 1, "a call outside the run was recorded"
    print(f"{'call (outside every run)':<26}{'plain ns':>10}{'patched ns':>12}"
          f"{'over ns':>9}{'ratio':>8}")
    worst = ("", 0.0)
    for label in CALLS:
        over = patched[label] - plain[label]
        if over > worst[1] or not worst[0]:
            worst = (label, over)
        print(f"{label:<26}{plain[label]:>10.0f}{patched[label]:>12.0f}{over:>9.0f}"
              f"{patched[label] / plain[label]:>7.2f}x")
    capture_side(args.n // 4, args.repeat)
    label, over = worst
    goal("sessions.outside", over, 100.0, "<=", unit="ns",
         what="a patched call outside every run, over the unpatched call (worst of "
              + ", ".join(CALLS) + ")",
         detail=f"{label}: {plain[label]:,.0f} ns plain, {patched[label]:,.0f} ns patched "
                f"({patched[label] / plain[label]:.2f}x)")


if __name__ == "__main__":
    main()
