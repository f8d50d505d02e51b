"""Value reads and tool events: CPU time per call, recorded and replayed (issue 16).

For ``time.time`` the comparison is with time-machine's and freezegun's patched
``time.time`` (both ticking), measured in the same run; our figure includes
call-site capture and writing the event to the cassette (copied into the
journal's shared memory map: the event survives SIGKILL when the call
returns), theirs does neither. A tool event is measured beside the msgpack encoding of its own
payload (request and result), which the goal allows on top of 5 us.

Every figure is CPU time of this process (``time.process_time_ns``, the
kernel's share included: the page faults of the journal's map), the best of
the rounds, so a machine busy with other processes shifts it little.

    python bench/bench_clock.py [--n 50000] [--rounds 5]
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
import msgpack
import time_machine
from _goals import goal

import replay

TEXT = ("The tool looked the order up and found it shipped on Tuesday; "
        "tracking says it is out for delivery. ") * 5  # ~500 bytes


def _result(i: int) -> dict[str, object]:
    return {"order": i, "status": "shipped", "text": f"{i}: {TEXT}"[:500]}


@replay.tool
def lookup(i: int) -> dict[str, object]:
    """A tool with a ~500-byte result that differs on every call."""
    return _result(i)


def per_call(fn: Callable[[int], object], n: int, rounds: int) -> float:
    """Best of ``rounds`` runs of ``n`` calls ``fn(i)``, CPU ns per call."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time_ns()
        for i in range(n):
            fn(i)
        best = min(best, (time.process_time_ns() - t0) / n)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    n, rounds = args.n, args.rounds
    calls: dict[str, tuple[Callable[[int], object], Callable[[int], object]]] = {
        "time.time()": (lambda i: time.time(), lambda i: time.time()),
        "random.random()": (lambda i: random.random(), lambda i: random.random()),
        "uuid.uuid4()": (lambda i: uuid.uuid4(), lambda i: uuid.uuid4()),
        "@replay.tool": (lookup, _result),
    }
    rows: dict[str, tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (fn, plain_fn) in calls.items():
            k = n if label != "@replay.tool" else max(1, n // 5)  # tools cost more
            plain = per_call(plain_fn, k, rounds)
            path = os.path.join(tmp, "c.replay")
            with replay.record(path):
                rec = per_call(fn, k, rounds)
            with replay.play(path):
                rep = per_call(fn, k, rounds)  # the recording holds `rounds` passes
            rows[label] = (plain, rec, rep)
    pack = msgpack.Packer().pack
    payload = per_call(lambda i: pack({"request": {"args": {"i": i}}, "response": _result(i)}),
                       n, rounds) - per_call(_result, n, rounds)
    with time_machine.travel(0.0, tick=True):
        tm = per_call(lambda i: time.time(), n, rounds)
    with freezegun.freeze_time("2026-01-01", tick=True):
        fg = per_call(lambda i: time.time(), n, rounds)
    print("CPU ns per call, best of the rounds")
    print(f"{'call':<18}{'plain ns':>10}{'record ns':>11}{'replay ns':>11}")
    for label, (plain, rec, rep) in rows.items():
        print(f"{label:<18}{plain:>10.0f}{rec:>11.0f}{rep:>11.0f}")
    rec_t, rep_t = rows["time.time()"][1], rows["time.time()"][2]
    rec_r, rep_r = rows["random.random()"][1], rows["random.random()"][2]
    plain_tool, rec_tool, _ = rows["@replay.tool"]
    tool_over = rec_tool - plain_tool
    print(f"\ntime.time() under time-machine (tick=True): {tm:,.0f} ns/call")
    print(f"time.time() under freezegun (tick=True):    {fg:,.0f} ns/call")
    print(f"agent-replay record / time-machine: {rec_t / tm:.1f}x   "
          f"replay / time-machine: {rep_t / tm:.1f}x")
    print(f"agent-replay record / freezegun:    {rec_t / fg:.1f}x   "
          f"replay / freezegun: {rep_t / fg:.1f}x")
    print(f"tool event: {tool_over:,.0f} ns over the unrecorded call, of which the "
          f"payload's own msgpack encoding would be {payload:,.0f} ns")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    goal("clock.record", rec_t / 1000, 2.0, "<=", unit="us",
         what="CPU per recorded time.time() (call site and event write included)",
         detail=f"{rec_t:,.0f} ns; time-machine {tm:,.0f} ns, freezegun {fg:,.0f} ns")
    goal("clock.record_vs_tm", rec_t / tm, 5.0, "<=", unit="x",
         what="recorded time.time() / time-machine's ticking time.time (CPU)",
         detail=f"{rec_t:,.0f} ns vs {tm:,.0f} ns")
    goal("clock.replay", rep_t / 1000, 1.0, "<=", unit="us",
         what="CPU per replayed time.time()", detail=f"{rep_t:,.0f} ns; plain "
         f"{rows['time.time()'][0]:,.0f} ns, time-machine {tm:,.0f} ns")
    goal("random.record", rec_r / 1000, 2.0, "<=", unit="us",
         what="CPU per recorded random.random() (event write included)",
         detail=f"{rec_r:,.0f} ns")
    goal("random.replay", rep_r / 1000, 1.0, "<=", unit="us",
         what="CPU per replayed random.random()", detail=f"{rep_r:,.0f} ns")
    goal("tool.record", (tool_over - payload) / 1000, 5.0, "<=", unit="us",
         what="CPU of a recorded @replay.tool call over the unrecorded one, minus the "
              "msgpack encoding of its request and ~500-byte result",
         detail=f"{tool_over:,.0f} ns over, payload encoding {payload:,.0f} ns")


if __name__ == "__main__":
    main()
