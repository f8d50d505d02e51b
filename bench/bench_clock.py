"""Clock, random and uuid interception: cost per call against the alternatives.

For ``time.time`` the comparison is with time-machine's and freezegun's patched
``time.time`` (both ticking), measured in the same run; our figure includes
call-site capture and writing the event to the cassette, theirs does neither.

    python bench/bench_clock.py [--n 50000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import freezegun
import time_machine
from _goals import goal

import replay


def per_call(fn: Callable[[], object], n: int) -> float:
    """Best of three runs of ``n`` calls, ns per call."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=50_000)
    n = ap.parse_args().n
    calls: dict[str, Callable[[], object]] = {
        "time.time()": lambda: time.time(),
        "random.random()": lambda: random.random(),
        "uuid.uuid4()": lambda: uuid.uuid4(),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, fn in calls.items():
            plain = per_call(fn, n)
            path = os.path.join(tmp, "c.replay")
            with replay.record(path):
                rec = per_call(fn, n)
            with replay.play(path, unused="ignore"):
                rep = per_call(fn, n)
            rows.append((label, plain, rec, rep))
    with time_machine.travel(0.0, tick=True):
        tm = per_call(lambda: time.time(), n)
    with freezegun.freeze_time("2026-01-01", tick=True):
        fg = per_call(lambda: time.time(), n)
    print(f"{'call':<18}{'plain ns':>10}{'record ns':>11}{'replay ns':>11}")
    for label, plain, rec, rep in rows:
        print(f"{label:<18}{plain:>10.0f}{rec:>11.0f}{rep:>11.0f}")
    rec_time = rows[0][2]
    rep_time = rows[0][3]
    print(f"\ntime.time() under time-machine (tick=True): {tm:,.0f} ns/call")
    print(f"time.time() under freezegun (tick=True):    {fg:,.0f} ns/call")
    print(f"agent-replay record / time-machine: {rec_time / tm:.1f}x   "
          f"replay / time-machine: {rep_time / tm:.1f}x")
    print(f"agent-replay record / freezegun:    {rec_time / fg:.1f}x   "
          f"replay / freezegun: {rep_time / fg:.1f}x")
    goal("clock.record", rec_time / tm, 1.0, "<=", unit="x",
         what="time.time() recorded (call site and event write included) / time-machine",
         detail=f"{rec_time:,.0f} ns vs {tm:,.0f} ns (freezegun {fg:,.0f} ns)")
    goal("clock.replay", rep_time / tm, 1.0, "<=", unit="x",
         what="time.time() replayed / time-machine",
         detail=f"{rep_time:,.0f} ns vs {tm:,.0f} ns")


if __name__ == "__main__":
    main()
