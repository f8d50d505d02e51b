"""``make bench``: run every bench script and write docs/performance.md.

Each script measures agent-replay and the alternative in the same run and
prints ratios, so a noisy machine shifts both sides alike. This runner adds
the machine, the versions and how to rerun, and keeps each script's own
tables verbatim.

    python bench/run_all.py [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import datetime
import glob
import importlib.metadata
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "docs", "performance.md")
PACKAGES = ("agent-replay", "msgpack", "zstandard", "httpx", "httpx2", "vcrpy", "openai",
            "anthropic", "textual", "time-machine", "freezegun")
QUICK_ARGS = {"bench_core.py": ["--n", "5000", "--load-events", "20000"],
              "bench_clock.py": ["--n", "5000"]}
GOALS = """\
| goal (ratios from the same run) | where |
| --- | --- |
| recording overhead per HTTP request at most 1/5 of vcrpy's | bench_http.py |
| replay per request flat for N = 100..5,000; 100x faster than vcrpy at 5,000 | bench_http.py |
| cassette at most 1/10 of vcrpy's YAML size; load 10x faster than vcrpy's JSON | bench_http.py |
| time to first chunk while recording within 1 ms of unrecorded | bench_http.py |
| clock interception no slower than time-machine's ticking time.time | bench_clock.py |
| size grows linearly with turns (400/200 <= 2.3) | bench_format.py |
| TUI first paint < 1 s, keystroke < 50 ms at 100,000 events | bench_tui.py |
| diff of 10,000 vs 10,000 events < 2 s | bench_diff.py |
"""


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    mem = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem = f", {pages / 2**30:.0f} GiB"
    except (ValueError, OSError):
        pass
    return (f"{cpu}, {os.cpu_count()} cores{mem}; {platform.platform()}; "
            f"Python {sys.version.split()[0]}")


def versions() -> str:
    out = []
    for name in PACKAGES:
        try:
            out.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return ", ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--output", default=OUT)
    args = ap.parse_args()
    scripts = sorted(glob.glob(os.path.join(HERE, "bench_*.py")))
    if args.only:
        scripts = [s for s in scripts if any(o in os.path.basename(s) for o in args.only)]
    sections = []
    for script in scripts:
        name = os.path.basename(script)
        extra = QUICK_ARGS.get(name, []) if args.quick else []
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, script, *extra], capture_output=True,
                                  text=True, cwd=ROOT, timeout=1800)
            text = proc.stdout.rstrip()
            if proc.returncode != 0:
                text += f"\n\n(exit {proc.returncode})\n{proc.stderr[-2000:]}"
        except subprocess.TimeoutExpired:
            text = "(timed out after 30 minutes)"
        took = time.perf_counter() - t0
        print(text, flush=True)
        sections.append(f"## {name}\n\n`python bench/{name} {' '.join(extra)}`".rstrip()
                        + f" ({took:.0f} s)\n\n```\n{text}\n```\n")
    doc = (
        "# Performance\n\n"
        "Written by `make bench` (`python bench/run_all.py`); every figure below is from "
        "one run on the machine named here. Each script measures agent-replay and the "
        "tool a user would pick instead in the same run and prints ratios, so a busy "
        "machine shifts both sides alike. Rerun with `make bench`; one script with "
        "`python bench/NAME.py`.\n\n"
        f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}\n"
        f"- machine: {machine()}\n- versions: {versions()}\n\n"
        f"## Goals\n\n{GOALS}\n" + "\n".join(sections))
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(doc)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
