"""HTTP record/replay cost beside vcrpy (YAML and JSON), plus stream timing.

For N sequential requests (an agent's LLM calls: the same URL, a JSON body
that changes every turn, a ~2 KB JSON answer) against a loopback server in
another process, in one run so a busy machine shifts every side alike:

* record cost per request (and the overhead over the unrecorded request),
  cassette write time, file size, load time, replay cost per request;
* for agent-replay, vcrpy with its YAML serializer and with its JSON one.

vcrpy looks a request up by scanning its interactions, so its replay cost
grows with N; past ``--vcr-sample`` requests it is timed on the last ones,
with the earlier ones marked played as a full replay would have left them
(marked ``*``): the cost it has there, without waiting minutes for it.
Then, for a 200-chunk stream at 5 ms a chunk: time to first chunk with and
without the recorder, instant and paced replay time against the recording.

    python bench/bench_http.py [--n 100 1000 5000] [--vcr-sample 300]
"""

from __future__ import annotations

import argparse
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
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_ours(url: str, n: int, tmp: str) -> dict[str, float]:
    path = os.path.join(tmp, f"ours{n}.replay")
    with httpx.Client() as client:
        run = replay.record(path)
        run.start()
        rec, rec_cpu = run_requests(client, url, range(n))
        write = timed(lambda: run.stop())
        load = timed(lambda: replay.load(path))
        run = replay.play(path, unused="fail")
        run.start()
        play, _ = run_requests(client, url, range(n))
        run.stop()
    return {"rec": rec, "rec_cpu": rec_cpu, "write": write, "load": load, "play": play,
            "played": n, "size": os.path.getsize(path)}


def bench_vcr(url: str, n: int, tmp: str, serializer: str, sample: int) -> dict[str, float]:
    path = os.path.join(tmp, f"vcr{n}.{serializer}")
    my_vcr = vcr.VCR(serializer=serializer)
    with httpx.Client() as client:
        cm = my_vcr.use_cassette(path)
        cm.__enter__()
        rec, rec_cpu = run_requests(client, url, range(n))
        write = timed(lambda: cm.__exit__(None, None, None))
        load = timed(lambda: vcr.cassette.Cassette.load(path=path, serializer=SERIALIZERS[
            serializer]))
        with my_vcr.use_cassette(path) as cassette:
            if n > sample:  # its cost at position i grows with i: time the last ones
                cassette.play_counts.update(range(n - sample))  # as if already played
                play, _ = run_requests(client, url, range(n - sample, n))
                played = sample
            else:
                play, _ = run_requests(client, url, range(n))
                played = n
    return {"rec": rec, "rec_cpu": rec_cpu, "write": write, "load": load, "play": play,
            "played": played, "size": os.path.getsize(path)}


def table(url: str, ns: list[int], sample: int) -> None:
    print("per request: wall time, and CPU time of the client process over the unrecorded")
    print("request (the server runs in another process); write/load: the whole cassette\n")
    print(f"{'N':>6} {'who':<13}{'record':>9}{'CPU over':>10}{'write':>9}"
          f"{'size':>10}{'load':>9}{'replay':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in ns:
            with httpx.Client() as client:
                run_requests(client, url, range(min(n, 200)))  # warm up
                plain, plain_cpu = run_requests(client, url, range(n))
            rows = [("agent-replay", bench_ours(url, n, tmp)),
                    ("vcrpy yaml", bench_vcr(url, n, tmp, "yaml", sample)),
                    ("vcrpy json", bench_vcr(url, n, tmp, "json", sample))]
            print(f"{n:>6} {'(unrecorded)':<13}{plain / n * 1e6:>7.0f}us")
            for who, r in rows:
                star = "*" if r["played"] < n else " "
                print(f"{'':>6} {who:<13}{r['rec'] / n * 1e6:>7.0f}us"
                      f"{(r['rec_cpu'] - plain_cpu) / n * 1e6:>8.0f}us"
                      f"{r['write'] * 1e3:>7.0f}ms{r['size'] / 1024:>8.0f}KB"
                      f"{r['load'] * 1e3:>7.0f}ms{r['play'] / r['played'] * 1e6:>8.0f}us{star}")
            ours, yaml_row, json_row = (r for _, r in rows)
            over = max(ours["rec_cpu"] - plain_cpu, 1e-9)
            print(f"{'':>6} vcrpy-yaml / agent-replay: record CPU overhead "
                  f"{(yaml_row['rec_cpu'] - plain_cpu) / over:.1f}x (plus its write "
                  f"{yaml_row['write'] / max(ours['write'], 1e-9):.0f}x), replay "
                  f"{(yaml_row['play'] / yaml_row['played']) / (ours['play'] / n):.0f}x, "
                  f"size {yaml_row['size'] / ours['size']:.1f}x; "
                  f"load vcrpy-json / agent-replay {json_row['load'] / ours['load']:.1f}x")


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


def streams(url: str, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, httpx.Client() as client:
        first_chunk(client, url)
        plain, rec = [], []
        for i in range(runs):
            time.sleep(0.03)
            plain.append(first_chunk(client, url))
            with replay.record(os.path.join(tmp, f"t{i}.replay")):
                time.sleep(0.03)
                rec.append(first_chunk(client, url))
        print(f"time to first chunk (200 x 5 ms stream, {runs} interleaved runs): "
              f"unrecorded median {statistics.median(plain) * 1e3:.2f} ms "
              f"(min {min(plain) * 1e3:.2f}), recorded median "
              f"{statistics.median(rec) * 1e3:.2f} ms (min {min(rec) * 1e3:.2f}); "
              f"delta of medians {(statistics.median(rec) - statistics.median(plain)) * 1e3:+.2f}"
              f" ms, of minimums {(min(rec) - min(plain)) * 1e3:+.2f} ms")
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, nargs="+", default=[100, 1000, 5000])
    ap.add_argument("--vcr-sample", type=int, default=300)
    ap.add_argument("--stream-runs", type=int, default=15)
    args = ap.parse_args()
    proc, url = start_server()
    try:
        table(url, args.n, args.vcr_sample)
        print()
        streams(url, args.stream_runs)
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
