"""A recorded agent service under load: FastAPI on uvicorn, 50 concurrent clients.

The endpoint (bench/_service_app.py) makes one chat call to the LLM emulator
(its own process, ``--latency-ms`` per answer) through the openai SDK; one
request in ``--fail-every`` answers 500. The service runs on uvicorn (one
worker process) with recording

* off: no middleware (the baseline, measured in the same run);
* keep all: ``replay.RecordingMiddleware(keep="all")``, every request a run in
  a local store;
* keep failed: ``keep="failed"``, every request recorded, only the 500s kept
  (the others cost a file delete).

``--clients`` httpx.AsyncClient workers (one process) send ``--requests``
requests per round after a warm-up; the modes are interleaved over
``--rounds`` rounds, a fresh server each. Throughput is requests per second
of wall time; latency is per request at the client. Medians over rounds.

    python bench/bench_service.py [--requests 1000] [--clients 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import httpx  # noqa: E402
from _goals import goal  # noqa: E402

import replay  # noqa: E402

MODES = ("off", "all", "failed")
LABEL = {"off": "recording off", "all": "on, keep all", "failed": "on, keep failed"}


@dataclass
class Round:
    mode: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    kept: int
    cpu_ms: float
    """The service process's CPU time per request (user + system)."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_emulator(folder: str, latency_ms: int) -> tuple[subprocess.Popen[str], str]:
    script = os.path.join(folder, "script.json")
    with open(script, "w", encoding="utf-8") as f:
        # delay_ms: the whole answer waits (latency_ms paces only streamed chunks)
        json.dump({"turns": [
            {"text": "It is fine.", "repeat": True, "delay_ms": latency_ms,
             "usage": {"input_tokens": 20, "output_tokens": 4}}]}, f)
    proc = subprocess.Popen([sys.executable, "-m", "fixtures.emulator", "--script", script],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"the emulator did not start: {line!r}")
    return proc, line.split()[-1]


def start_service(mode: str, llm: str, store: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": ROOT, "BENCH_RECORDING": mode,
           "BENCH_LLM_URL": llm + "/v1", "REPLAY_STORE": store}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench._service_app:app",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level",
                             "warning", "--no-access-log"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"uvicorn exited ({mode}): {err[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("uvicorn did not answer within 60 s")


async def load(url: str, requests: int, clients: int, fail_every: int) -> tuple[
        float, list[float], int]:
    """(wall seconds, per-request latencies, unexpected answers) of ``requests``
    requests sent by ``clients`` concurrent workers."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        async def worker() -> None:
            nonlocal errors
            for i in counter:
                boom = fail_every > 0 and i % fail_every == 0
                question = f"boom {i}" if boom else f"question {i}"
                t0 = time.perf_counter()
                try:
                    r = await http.post("/ask", json={"question": question})
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                if r.status_code != (500 if boom else 200):
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
    return wall, latencies, errors


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s)) - 1))]


def kept_runs(store: str) -> int:
    index = os.path.join(store, "index.sqlite")
    if not os.path.exists(index):
        return 0
    import sqlite3

    try:
        with sqlite3.connect(index) as db:
            return int(db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
    except sqlite3.OperationalError:  # not made yet
        return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--fail-every", type=int, default=100)
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                    help="which modes to run (off is always run: the baseline)")
    args = ap.parse_args()
    modes = tuple(m for m in MODES if m == "off" or m in args.modes)
    if not hasattr(replay, "RecordingMiddleware"):
        modes = ("off",)
    work = tempfile.mkdtemp(prefix="bench-service-")
    emu, llm = start_emulator(work, args.latency_ms)
    results: list[Round] = []
    try:
        for r in range(args.rounds):
            for mode in modes[r % len(modes):] + modes[:r % len(modes)]:
                store = os.path.join(work, f"store-{mode}-{r}")
                proc, url = start_service(mode, llm, store)
                try:
                    asyncio.run(load(url, args.warmup, args.clients, args.fail_every))
                    before = kept_runs(store)
                    cpu0 = cpu_seconds(proc.pid)
                    wall, lat, errors = asyncio.run(
                        load(url, args.requests, args.clients, args.fail_every))
                    time.sleep(0.5)  # let the last stores land
                    cpu = cpu_seconds(proc.pid) - cpu0
                    results.append(Round(mode, args.requests / wall, pct(lat, 0.5) * 1e3,
                                         pct(lat, 0.99) * 1e3, errors,
                                         kept_runs(store) - before,
                                         cpu / args.requests * 1e3))
                finally:
                    proc.terminate()
                    proc.wait(30)
    finally:
        emu.terminate()
        emu.wait(30)

    print(f"{args.requests:,} requests per round, {args.clients} concurrent clients, "
          f"{args.rounds} rounds (medians), emulator answering in {args.latency_ms} ms, "
          f"1 in {args.fail_every} requests answering 500; uvicorn, 1 worker; "
          f"load average {os.getloadavg()[0]:.1f} at the end\n")
    print(f"{'mode':18} {'req/s':>8} {'vs off':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'p99 +ms':>8} {'runs kept':>10} {'errors':>7} {'CPU ms/req':>11} {'vs off':>7}")
    med: dict[str, Round] = {}
    for mode in modes:
        rs = [x for x in results if x.mode == mode]
        med[mode] = Round(mode, statistics.median(x.rps for x in rs),
                          statistics.median(x.p50_ms for x in rs),
                          statistics.median(x.p99_ms for x in rs),
                          sum(x.errors for x in rs), int(statistics.median(x.kept for x in rs)),
                          statistics.median(x.cpu_ms for x in rs))
    base = med["off"]
    for mode in modes:
        m = med[mode]
        print(f"{LABEL[mode]:18} {m.rps:8.0f} {m.rps / base.rps:8.3f} {m.p50_ms:8.1f} "
              f"{m.p99_ms:8.1f} {m.p99_ms - base.p99_ms:+8.1f} {m.kept:10,} {m.errors:7} "
              f"{m.cpu_ms:11.2f} {m.cpu_ms / base.cpu_ms if base.cpu_ms else 0:7.2f}")
    print("\nCPU ms/req: the service process's CPU time (user + system) per request, the "
          "figure the machine's load changes least;\nat saturation a service's throughput "
          "is the inverse of it.")
    if "all" in med and med["all"].kept < args.requests:
        print(f"\nkeep all stored {med['all'].kept:,} of {args.requests:,} requests: the "
              "others ran unrecorded (a request that starts while another is recorded gets "
              "no session when sessions are one per process)")
    if "failed" not in med:
        print("\n(replay.RecordingMiddleware is not in this checkout: recording not measured)")
        return
    f = med["failed"]
    # The clients, the emulator and the service share this machine's cores, so the
    # wall figures swing with its load (recording on has measured faster than off).
    # The service's own CPU per request is steadier: at saturation throughput is its
    # inverse, and every request takes at least the added CPU longer. Each goal
    # takes the worse of the wall figure and that CPU bound, so noise cannot meet it.
    wall_loss = (1 - f.rps / base.rps) * 100
    cpu_loss = (1 - base.cpu_ms / f.cpu_ms) * 100 if f.cpu_ms else 0.0
    added_cpu = f.cpu_ms - base.cpu_ms
    goal("service.keep_failed_throughput", max(wall_loss, cpu_loss), 5, "<=", unit="%",
         what="throughput lost with recording on, keep failed: the worse of the wall "
              "figure and the saturation bound from the service's CPU per request",
         detail=f"wall {f.rps:.0f} vs {base.rps:.0f} req/s ({wall_loss:+.1f}%); CPU "
                f"{f.cpu_ms:.2f} vs {base.cpu_ms:.2f} ms a request ({cpu_loss:.1f}% at "
                f"saturation); {args.clients} clients")
    goal("service.keep_failed_p99", max(f.p99_ms - base.p99_ms, added_cpu), 2, "<=",
         unit="ms", what="p99 latency added with recording on, keep failed: the worse of "
                         "the wall figure and the CPU each request adds",
         detail=f"p99 {f.p99_ms:.1f} vs {base.p99_ms:.1f} ms; +{added_cpu:.2f} ms CPU a "
                "request")

if __name__ == "__main__":
    main()
