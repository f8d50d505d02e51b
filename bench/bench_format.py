"""Cassette format throughput: write and load 100,000 small events.

    python bench/bench_format.py                 # write/load events/s, file size
    python bench/bench_format.py --events 20000
    python bench/bench_format.py --thresholds    # the blob threshold measurement

Small events are what most of a run is made of: clock reads, random numbers,
uuids, short tool calls. Each figure is the best of ``--repeat`` runs (wall
clock; the CPU time of that run is shown too, as the machine may be shared).
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

from replay._cassette import CassetteWriter, Header, iter_events, read_cassette
from replay._cassette import codec as _codec
from replay._cassette.events import CallSite, Event, Value

HEADER = Header("2024-01-01T00:00:00.000000Z", ("bench",), "CPython", "bench")


def small_events(n: int) -> list[Event]:
    rng = random.Random(1)
    sites = [CallSite(f"/srv/agent/{name}.py", line, fn) for name, line, fn in
             (("main", 12, "run"), ("tools", 88, "search"), ("llm", 140, "ask"))]
    out = []
    for i in range(n):
        site = sites[i % 3]
        kind = i % 4
        if kind == 0:
            ev = Event(seq=i, channel="clock", request={"fn": "time"},
                       response=1_700_000_000.0 + i * 0.001, start_ns=i * 1000, duration_ns=80,
                       site=site)
        elif kind == 1:
            ev = Event(seq=i, channel="random", request={"fn": "random"}, response=rng.random(),
                       start_ns=i * 1000, duration_ns=50, site=site, task="main/1")
        elif kind == 2:
            ev = Event(seq=i, channel="uuid", request={"fn": "uuid4"}, response=rng.randbytes(16),
                       start_ns=i * 1000, duration_ns=60, site=site)
        else:
            ev = Event(seq=i, channel="tool:lookup", request={"args": [f"key-{i % 97}"]},
                       response={"ok": True, "value": i % 1000}, start_ns=i * 1000,
                       duration_ns=12_000, site=site, parent=i - 1)
        out.append(ev)
    return out


def best(repeat: int, fn: Callable[[], None]) -> tuple[float, float]:
    """Best (wall, cpu) seconds of ``repeat`` runs."""
    runs = []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.perf_counter() - w, time.process_time() - c))
    return min(runs)


def throughput(n: int, repeat: int) -> None:
    events = small_events(n)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.replay")

        def write() -> None:
            with CassetteWriter(path, HEADER) as w:
                for ev in events:
                    w.write(ev)

        def load() -> None:
            assert len(read_cassette(path).events) == n

        def stream() -> None:
            assert sum(1 for _ in iter_events(path)) == n

        results = {"write": best(repeat, write), "load (read_cassette)": best(repeat, load),
                   "stream (iter_events)": best(repeat, stream)}
        size = os.path.getsize(path)
    print(f"{n} small events, best of {repeat}:")
    for name, (wall, cpu) in results.items():
        print(f"  {name:<22} {n / wall:>10,.0f} events/s  ({n / cpu:,.0f}/s of CPU time)")
    print(f"  file size              {size:>10,} bytes ({size / n:.1f} bytes/event)")


def thresholds() -> None:
    """File size and write time of 100/200-turn conversations per blob threshold."""
    words = ("the", "model", "tool", "call", "agent", "replay", "cassette", "token", "stream",
             "request", "response", "error", "retry", "json", "schema", "search", "result",
             "page", "weather", "city", "price", "order", "user")

    def text(rng: random.Random, lo: int, hi: int) -> str:
        n = rng.randint(lo, hi)
        out: list[str] = []
        while sum(len(w) + 1 for w in out) < n:
            out.append(rng.choice(words))
        return " ".join(out)[:n]

    def run(turns: int, lo: int, hi: int, path: str) -> tuple[int, float, float]:
        """File size, write CPU seconds, load CPU seconds."""
        rng = random.Random(7)
        hist: list[Value] = []
        t = time.process_time()
        with CassetteWriter(path, HEADER) as w:
            for i in range(turns):
                user: Value = {"role": "user", "content": text(rng, lo, hi)}
                resp: Value = {"role": "assistant", "content": text(rng, lo, hi)}
                w.write(Event(seq=i, channel="http", request={"messages": [*hist, user]},
                              response=resp))
                hist += [user, resp]
        written = time.process_time()
        read_cassette(path)
        return os.path.getsize(path), written - t, time.process_time() - written

    saved = _codec.BLOB_MIN_SIZE
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "t.replay")
        for lo, hi in ((300, 600), (20, 400)):
            for threshold in (64, 128, 256, 512, 1 << 40):
                _codec.BLOB_MIN_SIZE = threshold  # type: ignore[misc]
                a, _, _ = run(100, lo, hi, path)
                b, wb, lb = run(200, lo, hi, path)
                name = "off" if threshold == 1 << 40 else str(threshold)
                print(f"messages {lo}-{hi} chars, threshold {name:>4}: 100 turns {a:>7,} B, "
                      f"200 turns {b:>7,} B (x{b / a:.2f}); 200 turns: write "
                      f"{wb * 1000:>3.0f} ms, load {lb * 1000:>3.0f} ms")
    _codec.BLOB_MIN_SIZE = saved  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--thresholds", action="store_true")
    args = parser.parse_args()
    if args.thresholds:
        thresholds()
    else:
        throughput(args.events, args.repeat)


if __name__ == "__main__":
    main()
