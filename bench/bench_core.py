"""Per-event cost of the core interceptors, and cassette load throughput.

Prints, in one run so a busy machine shifts both sides alike:
* recording cost per event for clock, random and tool events, beside the
  unrecorded call;
* replay cost per event for the same;
* load throughput (events/s) for a 100,000-event cassette.

    python bench/bench_core.py [--n 20000] [--load-events 100000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import replay


@replay.tool
def lookup(key: str, n: int) -> dict[str, object]:
    """A tiny tool: the recorded cost is ours, not the tool's."""
    return {"key": key, "n": n, "ok": True}


def _plain_lookup(key: str, n: int) -> dict[str, object]:
    return {"key": key, "n": n, "ok": True}


def _per_call(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - t0) / n


CASES: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
    "clock  time.time()": (lambda: time.time(), lambda: time.time()),
    "random random.random()": (lambda: random.random(), lambda: random.random()),
    "tool   @replay.tool": (lambda: lookup("k", 1), lambda: _plain_lookup("k", 1)),
}


def bench_events(n: int, tmp: str) -> None:
    print(f"{'event kind':<24}{'plain ns':>10}{'record ns':>11}{'replay ns':>11}"
          f"{'record/plain':>14}")
    for label, (call, plain) in CASES.items():
        path = os.path.join(tmp, f"{label.split()[0]}.replay")
        plain_ns = _per_call(plain, n)
        with replay.record(path):
            rec_ns = _per_call(call, n)
        with replay.play(path, unused="ignore"):
            play_ns = _per_call(call, n)
        print(f"{label:<24}{plain_ns:>10.0f}{rec_ns:>11.0f}{play_ns:>11.0f}"
              f"{rec_ns / plain_ns:>13.0f}x")


def bench_load(n: int, tmp: str) -> None:
    path = os.path.join(tmp, "load.replay")
    t0 = time.perf_counter()
    with replay.record(path):
        for i in range(n):
            if i % 3 == 0:
                time.time()
            elif i % 3 == 1:
                random.random()
            else:
                lookup("k", i)
    write_s = time.perf_counter() - t0
    size = os.path.getsize(path)
    t0 = time.perf_counter()
    cassette = replay.read_cassette(path)
    load_s = time.perf_counter() - t0
    count = len(cassette.events)
    print(f"\n{count} events recorded in {write_s:.2f}s ({count / write_s:,.0f} events/s), "
          f"{size / 1024:.0f} KiB ({size / count:.1f} B/event)")
    print(f"loaded in {load_s:.3f}s: {count / load_s:,.0f} events/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20_000, help="calls per measurement")
    ap.add_argument("--load-events", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_events(args.n, tmp)
        bench_load(args.load_events, tmp)


if __name__ == "__main__":
    main()
