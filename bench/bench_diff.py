"""Time ``replay.diff`` on agent-like runs with a handful of changes.

Each run is a loop of turns: one OpenAI chat call (HTTP, JSON bodies, the last
ten messages of the conversation, a usage block), one tool call, three clock
reads, two random draws and a uuid: eight events a turn. The right run differs
from the left in five places: a tool answer, a model prompt, a random value, an
extra event and a missing one. Prints the time to diff events in memory and the
time to diff the two cassette files (reading included), then the time to group
a run into agent steps and to diff two runs step by step, beside the event diff.

    python bench/bench_diff.py [--sizes 1000 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _goals import goal

import replay
from replay._cassette import CassetteWriter, Header

URL = "http://127.0.0.1:8000/v1/chat/completions"


def _chat(seq: int, start: int, turn: int, history: list[dict[str, str]], model: str = "gpt-4o"
          ) -> replay.Event:
    body = {"model": model, "messages": [{"role": "system", "content": "You are helpful."},
                                         *history[-10:]]}
    answer = {"id": f"chatcmpl-{turn}", "object": "chat.completion", "model": model,
              "choices": [{"index": 0, "message": {"role": "assistant",
                                                   "content": f"answer {turn}"},
                           "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 100 + turn, "completion_tokens": 20,
                        "total_tokens": 120 + turn}}
    return replay.Event(
        seq, "http", {"method": "POST", "url": URL, "body": body,
                      "headers": {"content-type": "application/json"}},
        {"status": 200, "reason": "OK", "http_version": "HTTP/1.1",
         "headers": [["content-type", "application/json"], ["x-request-id", f"r{seq}"]]},
        start_ns=start, duration_ns=400_000,
        chunks=(replay.Chunk(json.dumps(answer).encode(), 300_000),))


def make_run(n: int, *, variant: bool) -> list[replay.Event]:
    """About ``n`` events; ``variant`` makes the five changes."""
    events: list[replay.Event] = []
    history: list[dict[str, str]] = []
    turn = 0
    t = 0

    def add(channel: str, request: replay.Value, response: replay.Value) -> None:
        nonlocal t
        events.append(replay.Event(len(events), channel, request, response, start_ns=t,
                                   duration_ns=1000))
        t += 10_000

    while len(events) < n:
        history.append({"role": "user", "content": f"question {turn}"})
        if variant and turn == turns(n) // 3:
            history[-1] = {"role": "user", "content": f"question {turn}, reworded"}
        add("clock", {"fn": "time.time"}, 1_700_000_000.0 + turn)
        ev = _chat(len(events), t, turn, history)
        events.append(ev)
        t += 500_000
        history.append({"role": "assistant", "content": f"answer {turn}"})
        temp = 20 + turn % 7
        if variant and turn == turns(n) // 2:
            temp = 99
        add("tool:get_weather", {"args": {"city": f"city{turn % 13}"}}, {"temp": temp})
        add("random", {"fn": "random"}, (turn * 7919 % 1000) / 1000)
        if not (variant and turn == turns(n) * 2 // 3):
            add("uuid", {"fn": "uuid4"}, f"00000000-0000-4000-8000-{turn:012d}")
        add("clock", {"fn": "time.time"}, 1_700_000_000.5 + turn)
        add("random", {"fn": "getrandbits", "k": 8},
            (turn * 31) % 256 if not (variant and turn == turns(n) * 3 // 4) else 255)
        if variant and turn == turns(n) * 5 // 6:
            add("clock", {"fn": "time.time_ns"}, 1_700_000_000_000_000_000 + turn)
        add("clock", {"fn": "time.time"}, 1_700_000_001.0 + turn)
        turn += 1
    return events


def turns(n: int) -> int:
    """Turns in a run of ``n`` events."""
    return n // 8


def _write(path: str, events: list[replay.Event]) -> None:
    w = CassetteWriter(path, Header.new())
    for ev in events:
        w.write(ev)
    w.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{'events':>8}  {'in memory':>10}  {'from files':>10}  first divergence   counts")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            left, right = make_run(n, variant=False), make_run(n, variant=True)
            lp, rp = os.path.join(tmp, f"l{n}.replay"), os.path.join(tmp, f"r{n}.replay")
            _write(lp, left)
            _write(rp, right)
            mem = files = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                result = replay.diff(left, right)
                mem = min(mem, time.perf_counter() - t0)
                t0 = time.perf_counter()
                replay.diff(lp, rp)
                files = min(files, time.perf_counter() - t0)
            first = result.first_divergence
            where = f"#{first.left_seq} {first.channel}" if first is not None else "-"
            counts = {k: v for k, v in result.counts().items() if v}
            print(f"{len(left):>8}  {mem:>9.3f}s  {files:>9.3f}s  {where:<18} {counts}")
    goal("diff.time", files, 2.0, "<=", unit="s",
         what=f"diff of {len(left):,} vs {len(right):,} events, from the files",
         detail=f"in memory {mem:.2f} s")
    print()
    print("agent steps (replay.steps) and the step-by-step diff (replay.step_diff, which "
          "replay diff runs too), in memory, against replay.diff in the same run")
    print(f"{'events':>8}  {'steps':>8}  {'step_diff':>10}  {'diff':>8}  step_diff / diff")
    for n in args.sizes:
        left, right = make_run(n, variant=False), make_run(n, variant=True)
        grouped = by_step = plain = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            replay.steps(left)
            grouped = min(grouped, time.perf_counter() - t0)
            t0 = time.perf_counter()
            replay.step_diff(left, right)
            by_step = min(by_step, time.perf_counter() - t0)
            t0 = time.perf_counter()
            replay.diff(left, right)
            plain = min(plain, time.perf_counter() - t0)
        print(f"{len(left):>8}  {grouped:>7.3f}s  {by_step:>9.3f}s  {plain:>7.3f}s  "
              f"{by_step / plain:.2f}x")


if __name__ == "__main__":
    main()
