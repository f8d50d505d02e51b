"""A recorded agent service under load: FastAPI on uvicorn, 50 concurrent clients.

The endpoint (bench/_service_app.py) makes one chat call to the LLM emulator
(its own process, ``--latency-ms`` per answer) through the openai SDK; one
request in ``--fail-every`` answers 500. The service runs on uvicorn (one
worker process) with recording

* off: no middleware (the baseline, measured in the same run);
* keep all: ``replay.RecordingMiddleware(keep="all")``, every request a run in
  a local store;
* keep failed: ``keep="failed"``, every request recorded, only the 500s kept
  (the others cost emptying their journal).

One server per mode is started at the beginning and kept; ``--rounds`` rounds
then load each in turn (the order rotating), ``--requests`` requests a round
from ``--clients`` concurrent clients (keep-alive connections driven by one
asyncio loop in this process, a minimal HTTP/1.1 client so the load generator
takes little of the machine's CPU). So the modes see the machine's load as it
shifts during the run alike, and every figure is a median over rounds.

Throughput is requests per second of wall time; latency is per request at the
client (p99 taken per round). The steadier figure is the service's own CPU
time per request (user + system, read from ``/proc/PID/stat`` before and after
the round; the clients, the emulator and other processes do not count): at
saturation a service's throughput is its inverse. It is compared round by
round (keep failed against off in the same round, the median of those ratios).
With ``--pin`` (the default on a machine with 2 or more CPUs) the services run
on the last CPU and the emulator and the clients on the others.

The goals take the worse of the wall figure and the one the CPU per request
gives at saturation, where 50 clients keep the service: throughput is its
inverse (loss ``1 - 1/ratio``) and latency proportional to it (p99 added:
off's p99 times ``ratio - 1``). So noise in the wall figures (+-25% and +-1 s
on a shared machine) can neither meet nor miss a goal alone.

    python bench/bench_service.py [--requests 1000] [--clients 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
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
    emu_ms: float
    """The emulator's CPU time per request."""
    client_ms: float
    """This process's (the clients') CPU time per request."""
    gc_ms: float = 0.0
    """Of ``cpu_ms``: the service's garbage collector."""
    full_gcs: int = 0
    """Full (generation 2) collections in the service during the round."""
    sys_ms: float = 0.0
    """Of ``cpu_ms``: system time (the kernel's, in the service's system calls)."""


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of process ``pid`` so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc; 0 elsewhere)."""
    return sum(cpu_times(pid))


def pin(pid: int, cpus: set[int] | None) -> None:
    if cpus and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, cpus)


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


def start_service(mode: str, llm: str, store: str,
                  cpus: set[int] | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": ROOT, "BENCH_RECORDING": mode,
           "BENCH_LLM_URL": llm + "/v1", "REPLAY_STORE": store}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench._service_app:app",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level",
                             "warning", "--no-access-log"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    pin(proc.pid, cpus)
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


class Client:
    """One keep-alive HTTP/1.1 connection: POSTs a JSON body, reads the status and a
    ``content-length`` body (what uvicorn sends). Minimal on purpose: the load
    generator shares the machine with the service it measures."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> int:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(b"POST %s HTTP/1.1\r\nhost: %s:%d\r\ncontent-type: "
                          b"application/json\r\ncontent-length: %d\r\n\r\n%s"
                          % (path.encode(), self.host.encode(), self.port, len(body), body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self.writer.wait_closed()


async def load(url: str, requests: int, clients: int, fail_every: int) -> tuple[
        float, list[float], int]:
    """(wall seconds, per-request latencies, unexpected answers) of ``requests``
    requests sent by ``clients`` concurrent workers."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    hostport = url.split("//", 1)[1]
    host, port = hostport.rsplit(":", 1)
    conns = [Client(host, int(port)) for _ in range(clients)]

    async def worker(conn: Client) -> None:
        nonlocal errors
        for i in counter:
            boom = fail_every > 0 and i % fail_every == 0
            body = json.dumps({"question": f"boom {i}" if boom else f"question {i}"}).encode()
            t0 = time.perf_counter()
            try:
                status = await asyncio.wait_for(conn.post("/ask", body), 60)
            except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError):
                errors += 1
                await conn.close()
                conn.reader = conn.writer = None
                continue
            latencies.append(time.perf_counter() - t0)
            if status != (500 if boom else 200):
                errors += 1

    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        wall = time.perf_counter() - t0
        for c in conns:
            await c.close()
    return wall, latencies, errors


def gc_stats(url: str) -> dict[str, float]:
    """The service's garbage-collector CPU seconds and passes so far (GET /gc)."""
    try:
        return dict(httpx.get(url + "/gc", timeout=10).json())
    except (httpx.HTTPError, ValueError):
        return {}


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


def median_round(mode: str, rs: list[Round]) -> Round:
    return Round(mode, statistics.median(x.rps for x in rs),
                 statistics.median(x.p50_ms for x in rs),
                 statistics.median(x.p99_ms for x in rs),
                 sum(x.errors for x in rs), int(statistics.median(x.kept for x in rs)),
                 statistics.median(x.cpu_ms for x in rs),
                 statistics.median(x.emu_ms for x in rs),
                 statistics.median(x.client_ms for x in rs),
                 statistics.median(x.gc_ms for x in rs), sum(x.full_gcs for x in rs),
                 statistics.median(x.sys_ms for x in rs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--fail-every", type=int, default=100)
    ap.add_argument("--pin", action=argparse.BooleanOptionalAction,
                    default=(os.cpu_count() or 1) >= 2,
                    help="services on the last CPU, the emulator and the clients on the others")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                    help="which modes to run (off is always run: the baseline)")
    args = ap.parse_args()
    modes = tuple(m for m in MODES if m == "off" or m in args.modes)
    if not hasattr(replay, "RecordingMiddleware"):
        modes = ("off",)
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    service_cpus = {cpus[-1]} if args.pin and len(cpus) >= 2 else None
    other_cpus = set(cpus[:-1]) if service_cpus else None
    pin(os.getpid(), other_cpus)
    work = tempfile.mkdtemp(prefix="bench-service-")
    emu, llm = start_emulator(work, args.latency_ms)
    pin(emu.pid, other_cpus)
    results: list[Round] = []
    servers: dict[str, tuple[subprocess.Popen[bytes], str, str]] = {}
    try:
        for mode in modes:
            store = os.path.join(work, f"store-{mode}")
            proc, url = start_service(mode, llm, store, service_cpus)
            servers[mode] = (proc, url, store)
            asyncio.run(load(url, args.warmup, args.clients, args.fail_every))
        for r in range(args.rounds):
            for mode in modes[r % len(modes):] + modes[:r % len(modes)]:
                proc, url, store = servers[mode]
                before = kept_runs(store)
                gc0 = gc_stats(url)
                sys0 = cpu_times(proc.pid)[1]
                cpu0, emu0, me0 = cpu_seconds(proc.pid), cpu_seconds(emu.pid), time.process_time()
                wall, lat, errors = asyncio.run(
                    load(url, args.requests, args.clients, args.fail_every))
                me = time.process_time() - me0
                time.sleep(0.5)  # let the last kept runs land
                cpu = cpu_seconds(proc.pid) - cpu0
                sys_cpu = cpu_times(proc.pid)[1] - sys0
                emu_cpu = cpu_seconds(emu.pid) - emu0
                gc1 = gc_stats(url)
                n = args.requests
                results.append(Round(mode, n / wall, pct(lat, 0.5) * 1e3,
                                     pct(lat, 0.99) * 1e3, errors, kept_runs(store) - before,
                                     cpu / n * 1e3, emu_cpu / n * 1e3, me / n * 1e3,
                                     (gc1.get("cpu", 0) - gc0.get("cpu", 0)) / n * 1e3,
                                     int(gc1.get("gen2", 0) - gc0.get("gen2", 0)),
                                     sys_cpu / n * 1e3))
    finally:
        for proc, _url, _store in servers.values():
            proc.terminate()
        for proc, _url, _store in servers.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
        emu.terminate()
        emu.wait(30)
        shutil.rmtree(work, ignore_errors=True)  # the stores and the emulator's script

    load_avg = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{args.requests:,} requests per round, {args.clients} concurrent clients, "
          f"{args.rounds} rounds (medians; the modes interleaved), emulator answering in "
          f"{args.latency_ms} ms, 1 in {args.fail_every} requests answering 500; uvicorn, "
          f"1 worker{', pinned to its own CPU' if service_cpus else ''}; load average "
          f"{load_avg} at the end\n")
    print(f"{'mode':18} {'req/s':>8} {'vs off':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'p99 +ms':>8} {'runs kept':>10} {'errors':>7} {'CPU ms/req':>11} {'vs off':>7}")
    med = {mode: median_round(mode, [x for x in results if x.mode == mode]) for mode in modes}
    base = med["off"]

    def paired(mode: str) -> float:
        """Median over rounds of (this mode's CPU per request / off's in the same round)."""
        by_round = [(a, b) for a, b in zip([x for x in results if x.mode == "off"],
                                           [x for x in results if x.mode == mode],
                                           strict=True)]
        return statistics.median(b.cpu_ms / a.cpu_ms for a, b in by_round if a.cpu_ms)

    for mode in modes:
        m = med[mode]
        print(f"{LABEL[mode]:18} {m.rps:8.0f} {m.rps / base.rps:8.3f} {m.p50_ms:8.1f} "
              f"{m.p99_ms:8.1f} {m.p99_ms - base.p99_ms:+8.1f} {m.kept:10,} {m.errors:7} "
              f"{m.cpu_ms:11.2f} {paired(mode):7.3f}")
    print("\nCPU ms/req: the service process's CPU time (user + system) per request, the "
          "figure the machine's load changes least;\nat saturation a service's throughput "
          "is its inverse. 'vs off' beside it: the median over rounds of the ratio to off's "
          "in the same round.")
    print("\nper round, CPU ms/req (" + ", ".join(modes) + "):")
    for r in range(args.rounds):
        row = results[r * len(modes):(r + 1) * len(modes)]
        by = {x.mode: x for x in row}
        print(f"  round {r + 1}: " + "  ".join(
            f"{m} {by[m].cpu_ms:.2f} ({by[m].rps:.0f} req/s, p99 {by[m].p99_ms:.0f} ms)"
            for m in modes))
    print("\nof the CPU per request, system time (the service's system calls): " + ", ".join(
        f"{m} {med[m].sys_ms:.2f} ms" for m in modes))
    print("of the CPU per request, the service's garbage collector: " + ", ".join(
        f"{m} {med[m].gc_ms:.2f} ms ({med[m].full_gcs} full collections in all rounds)"
        for m in modes))
    print(f"the emulator took {base.emu_ms:.2f} ms of CPU a request, the clients "
          f"{base.client_ms:.2f} ms (medians, recording off)")
    if "all" in med and med["all"].kept < args.requests:
        print(f"\nkeep all stored {med['all'].kept:,} of {args.requests:,} requests")
    if "failed" not in med:
        print("\n(replay.RecordingMiddleware is not in this checkout: recording not measured)")
        return
    f = med["failed"]
    # The clients, the emulator and the service share this machine's cores, so the
    # wall figures swing with its load (recording on has measured faster than off).
    # The service's own CPU per request is steadier: at saturation throughput is its
    # inverse and latency proportional to it. Each goal takes the worse of the wall
    # figure and that CPU bound, so noise cannot meet it.
    ratio = paired("failed")
    wall_loss = (1 - f.rps / base.rps) * 100
    cpu_loss = (1 - 1 / ratio) * 100 if ratio else 0.0
    added_cpu = base.cpu_ms * (ratio - 1)
    goal("service.keep_failed_throughput", max(wall_loss, cpu_loss), 5, "<=", unit="%",
         what="throughput lost with recording on, keep failed: the worse of the wall "
              "figure and the saturation bound from the service's CPU per request",
         detail=f"wall {f.rps:.0f} vs {base.rps:.0f} req/s ({wall_loss:+.1f}%); CPU "
                f"{f.cpu_ms:.2f} vs {base.cpu_ms:.2f} ms a request, {ratio:.3f}x round by "
                f"round ({cpu_loss:.1f}% at saturation); {args.clients} clients, "
                f"{args.rounds} rounds, load average {load_avg}")
    # At saturation every request queues behind the others, so latencies scale with
    # the CPU per request: p99 grows by that share of itself (the wall delta is noise
    # of +-1 s here). Unqueued, a request would gain only the added CPU (a floor).
    p99_at_saturation = base.p99_ms * (ratio - 1)
    goal("service.keep_failed_p99", max(f.p99_ms - base.p99_ms, p99_at_saturation), 2, "<=",
         unit="ms", what="p99 latency added with recording on, keep failed: the worse of "
                         "the wall figure and off's p99 scaled by the CPU per request's "
                         "ratio (latency at saturation is proportional to it)",
         detail=f"p99 {f.p99_ms:.1f} vs {base.p99_ms:.1f} ms; {ratio:.3f}x the CPU a "
                f"request: +{p99_at_saturation:.1f} ms at this p99; unqueued, a request "
                f"gains +{added_cpu:.2f} ms of CPU")


if __name__ == "__main__":
    main()
