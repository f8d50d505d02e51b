"""HTTP record/replay cost beside vcrpy (YAML and JSON), plus stream timing.

For N sequential requests (an agent's LLM calls: the same URL, a JSON body
that changes every turn, a ~2 KB JSON answer) against a loopback server in
another process, in one run so a busy machine shifts every side alike:

* record cost per request (and the overhead over the unrecorded request),
  cassette write time, file size, load time, replay cost per request;
* load, two ways for agent-replay: ``replay.load`` alone (format 2 checks the
  file's frames and index and decodes events on demand) and a full read, the
  load plus every event's request, response and body (what vcrpy's load does:
  it parses every interaction); the load goal compares the full read at N = 5,000
  (issue 16; the other Ns are printed too);
* for agent-replay, vcrpy with its YAML serializer and with its JSON one.

Each N is measured in ``--rounds`` interleaved rounds (default: 5 at N <= 200,
3 to 2,000, 2 above) and every figure is the best round's: the cost the code
has, not the machine's worst moment. Recording overhead is CPU time of the
client process (the server is another process) over the unrecorded request,
plus writing the cassette (vcrpy serializes at exit; agent-replay as it goes).

vcrpy looks a request up by scanning its interactions, so its replay cost
grows with N; past ``--vcr-sample`` requests it is timed on the last ones,
with the earlier ones marked played as a full replay would have left them
(marked ``*``): the cost it has there, without waiting minutes for it.
Then, for a 200-chunk stream at 5 ms a chunk: time to first chunk unrecorded,
recorded by agent-replay and recorded by vcrpy; instant and paced replay time;
the chunk boundaries each replay gives back.

    python bench/bench_http.py [--n 100 1000 5000] [--vcr-sample 200] [--rounds R]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import httpx  # noqa: E402
import vcr  # noqa: E402
import vcr.patch  # noqa: E402  (vcrpy saves the real transports at import)
from _goals import goal  # noqa: E402
from vcr.serializers import jsonserializer, yamlserializer  # noqa: E402

import replay  # noqa: E402

SERIALIZERS = {"yaml": yamlserializer, "json": jsonserializer}

SERVER = r"""
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
FILL = "lorem ipsum dolor sit amet " * 64
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for i in range(200):
                    time.sleep(0.005)
                    d = b"data: {\"i\": %d}\n\n" % i
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(d), d))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
            return
        turn = json.loads(body)["messages"][-1]["content"]
        out = json.dumps({"id": "chatcmpl-" + turn, "object": "chat.completion",
                          "choices": [{"index": 0, "message": {"role": "assistant",
                                      "content": FILL[:1900]}}], "turn": turn}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{proc.stdout.readline().strip()}"


def body(i: int) -> dict[str, Any]:
    return {"model": "m", "temperature": 0,
            "messages": [{"role": "system", "content": "You are terse."},
                         {"role": "user", "content": f"turn {i}"}]}


def run_requests(client: httpx.Client, url: str, indices: range) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for the requests, each read to the end.

    The server is another process, so this process's CPU time is what the
    client and the recorder cost, without the scheduling noise of a busy machine.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    for i in indices:
        r = client.post(url + "/v1/chat/completions", json=body(i))
        assert r.status_code == 200 and r.json()["turn"] == f"turn {i}"
    return time.perf_counter() - t0, time.process_time() - c0


def timed(fn: Callable[[], Any]) -> float:
    """CPU seconds of this process that ``fn`` took (in-process work: no server)."""
    c0 = time.process_time()
    fn()
    return time.process_time() - c0


def best_of(k: int, fn: Callable[[], Any]) -> float:
    return min(timed(fn) for _ in range(k))


def read_all(path: str) -> int:
    """``replay.load`` and every event's request, response and body read: comparable
    work to vcrpy's load, which parses every interaction. Returns the body bytes."""
    total = 0
    for ev in replay.load(path).events:
        if ev.request is not None and ev.response is not None:
            total += sum(len(c.data) for c in ev.chunks)
    return total


def vcr_read_all(path: str, serializer: str) -> int:
    """vcrpy's load (it parses every interaction) and every interaction's request, response
    and body read, as ``read_all`` reads ours. Returns the body bytes."""
    cassette = vcr.cassette.Cassette.load(path=path, serializer=SERIALIZERS[serializer])
    total = 0
    for request, response in cassette.data:
        if request.uri is not None and response["status"] is not None:
            total += len(response["body"]["string"])
    return total


def bench_ours(url: str, n: int, tmp: str) -> dict[str, float]:
    path = os.path.join(tmp, f"ours{n}.replay")
    with httpx.Client() as client:
        run = replay.record(path)
        run.start()
        rec, rec_cpu = run_requests(client, url, range(n))
        write = timed(lambda: run.stop())
        load = best_of(3, lambda: replay.load(path))
        full = best_of(3, lambda: read_all(path))
        run = replay.play(path, unused="fail")
        run.start()
        _, play = run_requests(client, url, range(n))
        run.stop()
    return {"rec": rec, "rec_cpu": rec_cpu, "write": write, "load": load, "full": full,
            "play": play,
            "played": n, "size": os.path.getsize(path)}


def bench_vcr(url: str, n: int, tmp: str, serializer: str, sample: int, *, load: bool = True,
              play: bool = True) -> dict[str, float]:
    """vcrpy's figures; ``load`` / ``play`` False skip those two (reported as infinite)."""
    path = os.path.join(tmp, f"vcr{n}.{serializer}")
    if os.path.exists(path):
        os.remove(path)
    my_vcr = vcr.VCR(serializer=serializer)
    out = {"load": math.inf, "full": math.inf, "play": math.inf, "played": min(n, sample)}
    with httpx.Client() as client:
        cm = my_vcr.use_cassette(path)
        cm.__enter__()
        rec, rec_cpu = run_requests(client, url, range(n))
        write = timed(lambda: cm.__exit__(None, None, None))
        out.update(rec=rec, rec_cpu=rec_cpu, write=write, size=os.path.getsize(path))
        if load:
            rounds = 1 if serializer == "yaml" else 3
            out["load"] = best_of(rounds, lambda: vcr.cassette.Cassette.load(
                path=path, serializer=SERIALIZERS[serializer]))  # it parses every interaction
            out["full"] = best_of(rounds, lambda: vcr_read_all(path, serializer))
        if not play:
            return out
        with my_vcr.use_cassette(path) as cassette:
            if n > sample:  # its cost at position i grows with i: time the last ones
                cassette.play_counts.update(range(n - sample))  # as if already played
                _, play = run_requests(client, url, range(n - sample, n))
                played = sample
            else:
                _, play = run_requests(client, url, range(n))
                played = n
    out.update(play=play, played=played)
    return out


def rounds_for(n: int, forced: int | None) -> int:
    if forced is not None:
        return forced
    return 5 if n <= 200 else 3 if n <= 2000 else 2


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per metric, the best (lowest) of the rounds."""
    return {k: min(r[k] for r in runs) for k in runs[0]}


def over_us(r: dict[str, float], plain_cpu: float, n: int) -> float:
    """Recording overhead per request, us: CPU over the unrecorded request, plus the write."""
    return (r["rec_cpu"] - plain_cpu + r["write"]) / n * 1e6


def table(url: str, ns: list[int], sample: int, forced_rounds: int | None) -> None:
    print("per request: wall time; CPU over: CPU time of the client process over the")
    print("unrecorded request (the server runs in another process); write, load and")
    print("replay: CPU time of this process; best of the rounds; load: the load call,")
    print("read all: it and every event's request, response and body read (vcrpy's")
    print("load parses every interaction; its read all adds the same loop over them)\n")
    print(f"{'N':>6} {'who':<13}{'record':>9}{'CPU over':>10}{'write':>9}"
          f"{'size':>10}{'load':>9}{'read all':>10}{'replay':>10}")
    rec_ratio: list[tuple[float, int, float, float, float]] = []
    size_ratio: list[tuple[float, int]] = []
    load_ratio: list[tuple[float, int, float, float, float]] = []
    play_us: dict[int, float] = {}
    vcr_play_us: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in ns:
            with httpx.Client() as client:
                run_requests(client, url, range(min(n, 200)))  # warm up
            plains: list[tuple[float, float]] = []
            runs: dict[str, list[dict[str, float]]] = {"ours": [], "yaml": [], "json": []}
            rounds = rounds_for(n, forced_rounds)
            for i in range(rounds):
                with httpx.Client() as client:
                    plains.append(run_requests(client, url, range(n)))
                runs["ours"].append(bench_ours(url, n, tmp))
                # every round for the figures the goals compare (best of rounds on both
                # sides); vcrpy's YAML load and JSON replay, shown only, in the first
                runs["yaml"].append(bench_vcr(url, n, tmp, "yaml", sample, load=i == 0))
                runs["json"].append(bench_vcr(url, n, tmp, "json", sample, play=i == 0))
            plain = min(p[0] for p in plains)
            plain_cpu = min(p[1] for p in plains)
            ours, yaml_row, json_row = (best(runs[k]) for k in ("ours", "yaml", "json"))
            rows = [("agent-replay", ours), ("vcrpy yaml", yaml_row), ("vcrpy json", json_row)]
            print(f"{n:>6} {'(unrecorded)':<13}{plain / n * 1e6:>7.0f}us"
                  f"{'':>10}{'':>9}{'':>10}{'':>9}{'':>10}{'':>10}  ({rounds} rounds)")
            for who, r in rows:
                star = "*" if r["played"] < n else " "
                print(f"{'':>6} {who:<13}{r['rec'] / n * 1e6:>7.0f}us"
                      f"{(r['rec_cpu'] - plain_cpu) / n * 1e6:>8.0f}us"
                      f"{r['write'] * 1e3:>7.0f}ms{r['size'] / 1024:>8.0f}KB"
                      f"{r['load'] * 1e3:>7.1f}ms{r['full'] * 1e3:>8.1f}ms"
                      f"{r['play'] / r['played'] * 1e6:>8.0f}us{star}")
            o, y, j = (over_us(r, plain_cpu, n) for r in (ours, yaml_row, json_row))
            play_us[n] = ours["play"] / n * 1e6
            vcr_play_us[n] = yaml_row["play"] / yaml_row["played"] * 1e6
            print(f"{'':>6} recording overhead per request (CPU over + write): agent-replay "
                  f"{o:.0f}us, vcrpy yaml {y:.0f}us, vcrpy json {j:.0f}us")
            cpu_ratio = (yaml_row["rec_cpu"] - plain_cpu) / max(ours["rec_cpu"] - plain_cpu, 1e-9)
            print(f"{'':>6} vcrpy-yaml / agent-replay: record CPU overhead {cpu_ratio:.1f}x"
                  f" (plus its write {yaml_row['write'] / max(ours['write'], 1e-9):.0f}x), "
                  f"with the write {y / max(o, 1e-9):.1f}x, replay "
                  f"{vcr_play_us[n] / play_us[n]:.0f}x, "
                  f"size {yaml_row['size'] / ours['size']:.1f}x; "
                  f"load vcrpy-json / agent-replay {json_row['load'] / ours['load']:.1f}x, "
                  f"read all {json_row['full'] / ours['full']:.1f}x")
            rec_ratio.append((o / max(y, 1e-9), n, o, y, j))
            size_ratio.append((ours["size"] / yaml_row["size"], n))
            load_ratio.append((json_row["full"] / ours["full"], n, ours["full"], json_row["full"],
                               ours["load"]))
    lo, hi = min(ns), max(ns)
    worst_rec = max(rec_ratio)
    goal("http.record_overhead", worst_rec[0], 0.2, "<=", unit="x",
         what="recording overhead per request, agent-replay / vcrpy-yaml (worst N)",
         detail=f"N={worst_rec[1]}: {worst_rec[2]:.0f} us vs {worst_rec[3]:.0f} us "
                f"(vcrpy-json {worst_rec[4]:.0f} us)")
    goal("http.replay_flat", play_us[hi] / play_us[lo], 1.3, "<=", unit="x",
         what=f"replay per request at N={hi:,} / at N={lo:,}",
         detail=f"{play_us[lo]:.0f} us -> {play_us[hi]:.0f} us")
    goal("http.replay_vs_vcrpy", vcr_play_us[hi] / play_us[hi], 100, ">=", unit="x",
         what=f"vcrpy-yaml / agent-replay replay per request at N={hi:,}",
         detail=f"{vcr_play_us[hi]:,.0f} us vs {play_us[hi]:.0f} us")
    worst_size = max(size_ratio)
    goal("http.size", worst_size[0], 0.1, "<=", unit="x",
         what="cassette size, agent-replay / vcrpy-yaml (worst N)",
         detail=f"N={worst_size[1]}: 1/{1 / worst_size[0]:.0f}")
    # Issue 16 states the goal at N = 5,000 (at N = 100 the fixed cost of opening a file
    # weighs most): the goal is taken there, or at the largest N when 5,000 is not run;
    # the other Ns are printed beside it.
    at = 5000 if 5000 in ns else hi
    ratio, _, full, vcr_full, alone = next(r for r in load_ratio if r[1] == at)
    others = ", ".join(f"N={r[1]:,}: {r[0]:.1f}x" for r in load_ratio if r[1] != at)
    goal("http.load", ratio, 10, ">=", unit="x",
         what=f"full load (every event's request, response and body read), vcrpy-json / "
              f"agent-replay at N={at:,}",
         detail=f"{vcr_full * 1e3:.1f} ms vs {full * 1e3:.1f} ms (replay.load alone: "
                f"{alone * 1e3:.1f} ms)" + (f"; {others}" if others else ""))

def first_chunk(client: httpx.Client, url: str) -> float:
    t0 = time.perf_counter()
    with client.stream("POST", url + "/stream", json={"s": 1}) as r:
        next(r.iter_raw())
        return time.perf_counter() - t0


def read_stream(client: httpx.Client, url: str) -> tuple[list[bytes], float]:
    t0 = time.perf_counter()
    with client.stream("POST", url + "/stream", json={"s": 1}) as r:
        chunks = list(r.iter_raw())
    return chunks, time.perf_counter() - t0


def streams(url: str, runs: int, vcr_runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, httpx.Client() as client:
        first_chunk(client, url)
        plain, rec, vrec = [], [], []
        for i in range(runs):
            time.sleep(0.03)
            plain.append(first_chunk(client, url))
            with replay.record(os.path.join(tmp, f"t{i}.replay")):
                time.sleep(0.03)
                rec.append(first_chunk(client, url))
            if i < vcr_runs:  # vcrpy reads the whole stream first: ~1.2 s a run
                with vcr.VCR().use_cassette(os.path.join(tmp, f"v{i}.yaml")):
                    time.sleep(0.03)
                    vrec.append(first_chunk(client, url))
        med_plain, med_rec = statistics.median(plain), statistics.median(rec)
        print(f"time to first chunk (200 x 5 ms stream, {runs} interleaved runs): "
              f"unrecorded median {med_plain * 1e3:.2f} ms "
              f"(min {min(plain) * 1e3:.2f}), recorded median "
              f"{med_rec * 1e3:.2f} ms (min {min(rec) * 1e3:.2f}); "
              f"delta of medians {(med_rec - med_plain) * 1e3:+.2f}"
              f" ms, of minimums {(min(rec) - min(plain)) * 1e3:+.2f} ms")
        med_vcr = statistics.median(vrec)
        print(f"time to first chunk recorded by vcrpy ({vcr_runs} runs): median "
              f"{med_vcr * 1e3:.0f} ms ({(med_vcr - med_plain) * 1e3:+.0f} ms: it hands "
              f"the caller nothing until the whole stream has arrived)")
        path = os.path.join(tmp, "stream.replay")
        with replay.record(path):
            recorded, rec_s = read_stream(client, url)
        instant = []
        for _ in range(5):
            with replay.play(path):
                chunks, s = read_stream(client, url)
                assert chunks == recorded
            instant.append(s)
        with replay.play(path, speed=1.0):
            chunks, paced = read_stream(client, url)
            assert chunks == recorded
        print(f"stream of {len(recorded)} chunks recorded in {rec_s * 1e3:.0f} ms; instant "
              f"replay {statistics.median(instant) * 1e3:.2f} ms "
              f"({statistics.median(instant) / rec_s:.2%} of it); paced (speed=1.0) "
              f"{paced * 1e3:.0f} ms ({(paced - rec_s) / rec_s:+.1%}); chunk boundaries equal")
        vpath = os.path.join(tmp, "stream.yaml")
        with vcr.VCR().use_cassette(vpath):
            vrecorded, _ = read_stream(client, url)
        with vcr.VCR().use_cassette(vpath):
            vchunks, vplay = read_stream(client, url)
        assert b"".join(vchunks) == b"".join(vrecorded)
        print(f"chunk fidelity: agent-replay gives back {len(chunks)} of {len(recorded)} "
              f"chunks, same boundaries, with their arrival times; vcrpy gives back "
              f"{len(vchunks)} chunk(s) for the same {len(recorded)}: the body whole, no "
              f"timing (replay {vplay * 1e3:.2f} ms)")
        goal("stream.ttfc", (med_rec - med_plain) * 1e3, 1.0, "<=", unit="ms",
             what="time to first chunk while recording, minus unrecorded (medians)",
             detail=f"{med_rec * 1e3:.2f} vs {med_plain * 1e3:.2f} ms; vcrpy "
                    f"{med_vcr * 1e3:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[100, 1000, 5000])
    ap.add_argument("--vcr-sample", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=None, help="rounds per N (default by N)")
    ap.add_argument("--stream-runs", type=int, default=31)
    ap.add_argument("--vcr-stream-runs", type=int, default=3)
    args = ap.parse_args()
    proc, url = start_server()
    try:
        table(url, args.n, args.vcr_sample, args.rounds)
        print()
        streams(url, args.stream_runs, max(1, min(args.vcr_stream_runs, args.stream_runs)))
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
