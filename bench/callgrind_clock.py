"""Instructions per patched value read, for callgrind (issues 16 and 17).

Not a goal bench (``make bench`` does not run it): the figures the clock and
random work quotes, free of the machine's load. Each case calls one reader ``N``
times through ``itertools.starmap`` and nothing else in the process does, so
callgrind collects only the calls with ``--toggle-collect=starmap_next``; the
difference of two ``N`` over the difference in ``N`` is the cost of one call
(first-call caching cancels out)::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --collect-atstart=no \\
        --toggle-collect=starmap_next --callgrind-out-file=OUT \\
        python bench/callgrind_clock.py CASE N

``CASE``: ``MODE-READ``, ``MODE`` one of ``plain`` (unpatched), ``outside`` (patched:
a run records in another thread), ``record``, ``replay`` (of a recording of
``--max`` reads made first in the same process, outside the collection); ``READ``
one of ``time``, ``time_ns``, ``random``, ``now``, ``uuid4``. ``--all N1 N2`` runs
every case under callgrind and prints the table.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import itertools
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import replay  # noqa: E402


def read_time() -> object:
    return time.time()


def read_time_ns() -> object:
    return time.time_ns()


def read_random() -> object:
    return random.random()


def read_now() -> object:
    return datetime.datetime.now()


def read_uuid4() -> object:
    return uuid.uuid4()


READS: dict[str, Callable[[], object]] = {
    "time": read_time, "time_ns": read_time_ns, "random": read_random,
    "now": read_now, "uuid4": read_uuid4,
}
MODES = ("plain", "outside", "record", "replay")


def calls(fn: Callable[[], object], n: int) -> None:
    """``n`` calls of ``fn``, the only use of ``starmap`` in the process."""
    collections.deque(itertools.starmap(fn, itertools.repeat((), n)), maxlen=0)


def run_case(case: str, n: int, most: int) -> None:
    mode, _, name = case.partition("-")
    fn = READS[name]
    if mode == "plain":
        calls(fn, n)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "c.replay")
        if mode == "outside":
            opened, done = threading.Event(), threading.Event()

            def other() -> None:
                with replay.record(os.path.join(tmp, "other.replay")):
                    opened.set()
                    done.wait()

            t = threading.Thread(target=other)
            t.start()
            opened.wait()
            try:
                calls(fn, n)
            finally:
                done.set()
                t.join()
        elif mode == "record":
            with replay.record(path):
                calls(fn, n)
        elif mode == "replay":
            with replay.record(path):
                for _ in range(most):
                    fn()
            with replay.play(path):
                calls(fn, n)
                for _ in range(most - n):  # the rest, outside the collection
                    fn()
        else:
            raise SystemExit(f"unknown mode {mode!r}")


def instructions(case: str, n: int, most: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--collect-atstart=no",
             "--toggle-collect=starmap_next", f"--callgrind-out-file={out}",
             sys.executable, os.path.abspath(__file__), case, str(n), "--max", str(most)],
            check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(out) as f:
            m = re.search(r"^summary:\s+(\d+)", f.read(), re.M)
        assert m is not None, "no summary in the callgrind output"
        return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case", nargs="?")
    ap.add_argument("n", nargs="?", type=int)
    ap.add_argument("--max", type=int, default=3000, help="reads recorded for replay-*")
    ap.add_argument("--all", nargs=2, type=int, metavar=("N1", "N2"))
    ap.add_argument("--only", default="", help="comma-separated cases for --all")
    ap.add_argument("--jobs", type=int, default=2, help="valgrind runs at a time")
    args = ap.parse_args()
    if args.all is None:
        run_case(args.case, args.n, max(args.max, args.n))
        return
    n1, n2 = args.all
    cases = args.only.split(",") if args.only else [
        f"{m}-{r}" for r in READS for m in MODES]
    print(f"instructions per call, ({n2:,} - {n1:,} calls) under callgrind")
    most = max(args.max, n2)
    with ThreadPoolExecutor(args.jobs) as pool:  # valgrind runs are slow: two at a time
        for case in cases:
            a, b = pool.map(instructions, (case, case), (n1, n2), (most, most))
            print(f"{case:<18}{(b - a) / (n2 - n1):>10,.0f}", flush=True)


if __name__ == "__main__":
    main()
