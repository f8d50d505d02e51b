"""Concurrent sessions: what a patched call costs code that belongs to no run.

While any session is open the patches are in place for the whole process; a
call made outside every run (another request of the service, a library's own
thread) must pass through at near-native cost. Each call is timed unpatched
and patched (from this thread, outside a run that records in another thread)
in ``--rounds`` alternating rounds of ``--n`` calls (``uuid4``: a quarter), CPU
time, so load from other processes that shifts during the run hits both
sides alike. A call's figure is its best round per side (noise only ever adds
time); the median over rounds of each round's patched - plain difference is
shown beside it.

    python bench/bench_sessions.py [--n 200000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import statistics
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
    return {label: per_call(get(), n // 4 if "uuid" in label else n, repeat)
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
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=15,
                    help="alternating plain / patched rounds (each call timed once a round)")
    args = ap.parse_args()
    rounds = max(1, args.rounds)
    assert not _patch.installed()
    plain: dict[str, list[float]] = {k: [] for k in CALLS}
    patched: dict[str, list[float]] = {k: [] for k in CALLS}
    opened = threading.Event()
    done = threading.Event()
    with tempfile.TemporaryDirectory() as tmp:
        def run() -> None:
            with replay.record(os.path.join(tmp, "other.replay")):
                time.time()
                opened.set()
                done.wait()

        for r in range(rounds):
            sides = ("plain", "patched") if r % 2 == 0 else ("patched", "plain")
            for side in sides:
                if side == "plain":
                    assert not _patch.installed()
                    for k, v in measure_all(args.n, 1).items():
                        plain[k].append(v)
                    continue
                opened.clear()
                done.clear()
                t = threading.Thread(target=run)
                t.start()
                opened.wait()
                assert _patch.installed()
                try:
                    for k, v in measure_all(args.n, 1).items():
                        patched[k].append(v)
                finally:
                    done.set()
                    t.join()
                os.unlink(os.path.join(tmp, "other.replay"))
        # One call of each outside a run: none may land in it.
        opened.clear()
        done.clear()
        t = threading.Thread(target=run)
        t.start()
        opened.wait()
        for get in CALLS.values():
            get()()
        done.set()
        t.join()
        events = replay.load(os.path.join(tmp, "other.replay")).events
    assert len(events) == 1, "a call outside the run was recorded"
    print(f"CPU ns per call, {rounds} alternating rounds of {args.n:,} calls (uuid4: "
          f"{args.n // 4:,}); best round per side, and the median of the rounds' "
          "differences\n")
    print(f"{'call (outside every run)':<26}{'plain ns':>10}{'patched ns':>12}"
          f"{'over ns':>9}{'ratio':>8}{'median over':>13}")
    worst = ("", 0.0)
    for label in CALLS:
        p, q = min(plain[label]), min(patched[label])
        over = q - p
        med = statistics.median(b - a for a, b in zip(plain[label], patched[label],
                                                      strict=True))
        if over > worst[1] or not worst[0]:
            worst = (label, over)
        print(f"{label:<26}{p:>10.0f}{q:>12.0f}{over:>9.0f}{q / p:>7.2f}x{med:>13.0f}")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    capture_side(args.n // 4, 3)
    label, over = worst
    p, q = min(plain[label]), min(patched[label])
    goal("sessions.outside", over, 100.0, "<=", unit="ns",
         what="a patched call outside every run, over the unpatched call (worst of "
              + ", ".join(CALLS) + "; best of alternating rounds, CPU time)",
         detail=f"{label}: {p:,.0f} ns plain, {q:,.0f} ns patched ({q / p:.2f}x)")


if __name__ == "__main__":
    main()
