"""Long runs: a synthetic run of N tool events (500-byte payloads), whole processes.

For each size (100,000 by default; 1,000,000 with ``--sizes 100000 1000000``
or ``REPLAY_BENCH_1M=1``) it records the run in a child process (``replay.record``
around a ``@replay.tool`` called N times) and then times, each in its own
child process so that its peak memory is its own (``ru_maxrss`` from
``wait4``):

* write: CPU seconds, file size, the writer's peak RSS;
* ``replay show X | head -1``: wall time until the first line arrived;
* ``replay show X``: wall time and peak RSS to stream every line;
* ``replay verify X``: wall time, CPU time (its threads and its child process
  included: ``wait4`` counts the children a process waited for) and peak RSS
  summed over the process and its child (``framesplit.py``; sampled from /proc
  every 10 ms, each process's own peak, ``VmHWM``, so the sum bounds the
  peak of the total), with the load average when it started;
* ``replay.load(X)``: wall time and peak RSS, then the time to decode every
  event (a packed file's events are decoded on demand);
* ``replay tui X``: time from starting the app (in process, headless, imports
  done) until the timeline painted event rows, the process's CPU time (every
  thread) until then, and peak RSS.

Goals (issue 16): at the largest size, tui rows < 1 s and < 300 MB, show's
first line < 0.3 s, show < 100 MB, verify < 5 s and < 100 MB, load < 3 s,
the writer < 100 MB.

    python bench/bench_scale.py [--sizes 100000 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from _goals import goal  # noqa: E402

WRITE = """
import hashlib, sys, replay
n, path = int(sys.argv[1]), sys.argv[2]

@replay.tool(name="fetch")
def fetch(i):  # 500 bytes unlike any other (hashlib is not a recorded input)
    b = i.to_bytes(8, "little")
    return "".join(hashlib.blake2b(b, salt=bytes([s])).hexdigest() for s in range(4))[:500]

with replay.record(path, redact=False):
    for i in range(n):
        fetch(i)
"""

LOAD = """
import sys, time, replay
t = time.perf_counter()
c = replay.load(sys.argv[1])
n = len(c.events)
took = time.perf_counter() - t
t = time.perf_counter()
for _ in c.events:  # every event decoded (a packed file's are decoded on demand)
    pass
print(n, took, time.perf_counter() - t)
"""

TUI = """
import asyncio, sys, time
sys.path.insert(0, sys.argv[2])
from bench_tui import TimedApp

async def main():
    cpu = time.process_time()
    app = TimedApp(sys.argv[1])
    async with app.run_test(size=(160, 45)):
        deadline = time.perf_counter() + 300
        while "rows" not in app.marks:
            if time.perf_counter() > deadline or not app.is_running:
                raise SystemExit("the timeline never showed")
            await asyncio.sleep(0.005)
        cpu = time.process_time() - cpu  # every thread's, when the rows showed (or just after)
    print(app.marks["rows"], cpu)

asyncio.run(main())
"""


def _peaks(root: int, seen: dict[int, float]) -> None:
    """Each process's peak RSS so far (MB), for ``root`` and its descendants (Linux)."""
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            parent[int(d)] = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            continue
    for pid in parent:
        q = pid
        while q in parent and q != root:
            q = parent[q]
        if q == root:  # the last reading wins: a forked child's copy is replaced by exec
            try:
                with open(f"/proc/{pid}/status") as f:
                    seen[pid] = next(int(x.split()[1]) / 1024 for x in f
                                     if x.startswith("VmHWM"))
            except (OSError, StopIteration, ValueError):
                pass


def child(args: list[str], *, stdin: Any = None, stdout: Any = subprocess.PIPE,
          tree: bool = False) -> tuple[float, float, float, str]:
    """(wall s, CPU s, peak RSS MB, stdout) of one child process; ``tree``: the peak
    RSS is summed over it and its own children (see the module docstring)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p))
    t = time.perf_counter()
    p = subprocess.Popen(args, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=env,
                         text=True)
    seen: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            _peaks(p.pid, seen)

    sampler = threading.Thread(target=sample, daemon=True)
    if tree and os.path.isdir("/proc"):
        sampler.start()
    out = ""
    if stdout is subprocess.PIPE:
        assert p.stdout is not None
        out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    stop.set()
    if sampler.is_alive():
        sampler.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read() if p.stderr else ""
    if p.returncode not in (0, 1):
        raise RuntimeError(f"{args[:4]} exited {p.returncode}: {err[-2000:]}")
    rss = ru.ru_maxrss / 1024
    if seen:  # ru_maxrss is the largest of the process and its children: an upper bound
        rss = max(seen.pop(p.pid, 0.0), rss) + sum(seen.values())
    return wall, ru.ru_utime + ru.ru_stime, rss, out


def first_line(cli: list[str]) -> tuple[float, float]:
    """(wall s until ``replay show`` printed its first line, its CPU s until it was killed
    right after, as by head: a busy machine stretches the first, not the second)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p))
    t = time.perf_counter()
    p = subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert p.stdout is not None
    p.stdout.readline()
    took = time.perf_counter() - t
    p.kill()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stdout.close()
    return took, ru.ru_utime + ru.ru_stime


CLI = "import sys; from replay._cli import main; sys.exit(main())"


def measure(n: int, workdir: str) -> dict[str, float]:
    py = sys.executable
    path = os.path.join(workdir, f"run{n}.replay")
    r: dict[str, float] = {}
    wall, cpu, rss, _ = child([py, "-c", WRITE, str(n), path])
    r.update(write_cpu=cpu, write_wall=wall, write_rss=rss, size_mb=os.path.getsize(path) / 1e6)
    cli = [py, "-c", CLI, "show", path]
    firsts = [first_line(cli) for _ in range(3)]
    r["show_first"] = min(w for w, _ in firsts)
    r["show_first_cpu"] = min(c for _, c in firsts)
    r["show_first_load"] = os.getloadavg()[0]
    r["import"] = min(first_line([py, "-c", "import replay._cli; print(1)"])[0]
                      for _ in range(3))
    with open(os.devnull, "w") as null:
        wall, _, rss, _ = child(cli, stdout=null)
    r.update(show_wall=wall, show_rss=rss)
    load = os.getloadavg()[0]
    wall, cpu, rss, out = child([py, "-c", CLI, "verify", path], tree=True)
    if "complete" not in out:
        raise RuntimeError(f"verify: {out}")
    r.update(verify_wall=wall, verify_cpu=cpu, verify_rss=rss, verify_load=load)
    wall, _, rss, out = child([py, "-c", LOAD, path])
    got, inner, every = out.split()
    if int(got) != n:
        raise RuntimeError(f"load read {got} events of {n}")
    r.update(load_wall=wall, load_inner=float(inner), load_every=float(every), load_rss=rss)
    try:
        wall, _, rss, out = child([py, "-c", TUI, path, HERE])
        rows, cpu = out.split()
        r.update(tui_rows=float(rows), tui_cpu=float(cpu), tui_rss=rss)
    except (RuntimeError, ValueError) as exc:
        print(f"tui at {n}: {exc}", file=sys.stderr)
        r.update(tui_rows=float("nan"), tui_cpu=float("nan"), tui_rss=float("nan"))
    return r


ROWS = (("write CPU", "write_cpu", "s"), ("file", "size_mb", "MB"),
        ("writer peak RSS", "write_rss", "MB"), ("show | head -1", "show_first", "s"),
        ("(its CPU)", "show_first_cpu", "s"),
        ("(python start + import replay._cli)", "import", "s"),
        ("show (all lines)", "show_wall", "s"), ("show peak RSS", "show_rss", "MB"),
        ("verify", "verify_wall", "s"), ("verify CPU", "verify_cpu", "s"),
        ("(load average when verify started)", "verify_load", ""),
        ("verify peak RSS (with its child process)", "verify_rss", "MB"),
        ("replay.load (process)", "load_wall", "s"), ("replay.load (call)", "load_inner", "s"),
        ("then every event decoded", "load_every", "s"),
        ("load peak RSS", "load_rss", "MB"), ("tui, first event rows", "tui_rows", "s"),
        ("(tui CPU until the rows, every thread)", "tui_cpu", "s"),
        ("tui peak RSS", "tui_rss", "MB"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = [100_000, 1_000_000] if os.environ.get("REPLAY_BENCH_1M") else [100_000]
    ap.add_argument("--sizes", type=int, nargs="+", default=default)
    ap.add_argument("--keep", help="write the cassettes here and keep them")
    args = ap.parse_args()
    workdir = args.keep or tempfile.mkdtemp(prefix="bench-scale-")
    os.makedirs(workdir, exist_ok=True)
    try:
        results = {n: measure(n, workdir) for n in args.sizes}
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print("Synthetic runs of tool events with 500-byte payloads, each step a separate "
          "process (wall time includes Python start-up).\n")
    print("| | " + " | ".join(f"{n:,} events" for n in args.sizes) + " |")
    print("|---|" + "---|" * len(args.sizes))
    for label, key, unit in ROWS:
        cells = [f"{results[n][key]:.2f} {unit}" if unit == "s" else
                 f"{results[n][key]:.1f}" if not unit else
                 f"{results[n][key]:.0f} {unit}" for n in args.sizes]
        print(f"| {label} | " + " | ".join(cells) + " |")
    for n in args.sizes:
        print(f"\nper event at {n:,}: write {results[n]['write_cpu'] / n * 1e6:.1f} µs CPU "
              f"(tool call, capture and writer), {results[n]['size_mb'] * 1e6 / n:.0f} bytes")
    n = max(args.sizes)
    r = results[n]
    at = f"N = {n:,}"
    goal("scale.tui_rows", r["tui_rows"], 1.0, "<=", what="replay tui: time to event rows",
         unit="s", detail=f"{at}; {r['tui_cpu']:.2f} s of CPU until then, load average "
         f"{os.getloadavg()[0]:.1f}")
    goal("scale.tui_rss", r["tui_rss"], 300, "<=", what="replay tui: peak RSS", unit="MB",
         detail=at)
    goal("scale.show_first", r["show_first"], 0.3, "<=",
         what="replay show | head -1: first line", unit="s",
         detail=f"{at}; {r['show_first_cpu']:.2f} s CPU, load average "
         f"{r['show_first_load']:.1f}")
    goal("scale.show_rss", r["show_rss"], 100, "<=", what="replay show: peak RSS", unit="MB",
         detail=at)
    goal("scale.verify_time", r["verify_wall"], 5.0, "<=", what="replay verify: wall time",
         unit="s", detail=f"{at}; {r['verify_cpu']:.2f} s CPU, load average "
         f"{r['verify_load']:.1f} when it started")
    goal("scale.verify_rss", r["verify_rss"], 100, "<=", what="replay verify: peak RSS",
         unit="MB", detail=at)
    goal("scale.load_time", r["load_inner"], 3.0, "<=", what="replay.load of the whole run",
         unit="s", detail=at)
    goal("scale.writer_rss", r["write_rss"], 100, "<=", what="writer process: peak RSS",
         unit="MB", detail=at)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
