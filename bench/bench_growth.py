"""Conversation growth: cassette size and load time as an agent's conversation grows.

An agent resends the whole conversation on every turn, so the bytes it sends
grow with the square of the number of turns. Here a chat agent talks to a
loopback server in another process (real HTTP through httpx): a ~1.5 KB
system prompt and two tool schemas, then per turn a user message (~150 chars)
and the model's answer (~400 chars), every request carrying everything before
it. The same traffic is recorded by agent-replay and by vcrpy (YAML, its
default serializer) at 50, 100, 200 and 400 turns; load times are CPU time of
this process, agent-replay's the best of three.

Goal: the file grows linearly with turns (size at 400 / size at 200 <= 2.3).

    python bench/bench_growth.py [--turns 50 100 200 400]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
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
from vcr.serializers import yamlserializer  # noqa: E402

import replay  # noqa: E402

WORDS = ("the", "model", "tool", "call", "agent", "order", "refund", "parcel", "customer",
         "weather", "forecast", "city", "price", "flight", "booking", "search", "result",
         "page", "schema", "error", "retry", "token", "stream", "policy", "replica", "total")

SERVER = r"""
import json, random, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
WORDS = json.loads(sys.argv[1])
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a): pass
    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        turn = len(req["messages"]) // 2
        rng = random.Random(turn)
        text = " ".join(rng.choice(WORDS) for _ in range(70))[:400]
        out = json.dumps({"id": "chatcmpl-%d" % turn, "object": "chat.completion",
                          "model": req["model"], "created": 1767225600 + turn,
                          "choices": [{"index": 0, "finish_reason": "stop", "message": {
                              "role": "assistant", "content": text}}],
                          "usage": {"prompt_tokens": 40 * turn, "completion_tokens": 90,
                                    "total_tokens": 40 * turn + 90}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""

SYSTEM = ("You are Ada, the support agent of Parcelly. " * 4 + " ".join(
    f"Rule {i}: be brief, cite the order id, never refund more than the order total, and "
    "check the refund policy before any refund." for i in range(12)))
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "lookup_order", "description": "Fetch an order by id.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                       "required": ["order_id"]}}},
    {"type": "function", "function": {
        "name": "issue_refund", "description": "Refund an amount to the customer's card.",
        "parameters": {"type": "object", "properties": {
            "order_id": {"type": "string"}, "amount": {"type": "number"}},
            "required": ["order_id", "amount"]}}},
]


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, json.dumps(WORDS)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{proc.stdout.readline().strip()}"


def converse(url: str, turns: int) -> tuple[int, int]:
    """Run a ``turns``-turn conversation; (bytes of the last request body, of all)."""
    rng = random.Random(11)
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    last = total = 0
    with httpx.Client() as client:
        for i in range(turns):
            question = " ".join(rng.choice(WORDS) for _ in range(30))[:150]
            messages.append({"role": "user", "content": f"[{i}] {question}"})
            req = client.build_request("POST", url + "/v1/chat/completions", json={
                "model": "gpt-4o", "temperature": 0, "messages": messages, "tools": TOOLS})
            last = len(req.content)
            total += last
            r = client.send(req)
            assert r.status_code == 200
            messages.append(r.json()["choices"][0]["message"])
    return last, total


def cpu(fn: Callable[[], Any]) -> float:
    c0 = time.process_time()
    fn()
    return time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, nargs="+", default=[50, 100, 200, 400])
    args = ap.parse_args()
    proc, url = start_server()
    rows: list[tuple[int, int, float, int, float, float]] = []
    try:
        converse(url, 5)  # warm up
        print(f"{'turns':>6}{'last body':>11}{'sent':>9}{'ours':>10}{'load':>9}"
              f"{'vcrpy yaml':>12}{'load':>9}{'yaml/ours':>11}")
        with tempfile.TemporaryDirectory() as tmp:
            for turns in args.turns:
                ours = os.path.join(tmp, f"ours{turns}.replay")
                with replay.record(ours):
                    last, sent = converse(url, turns)
                theirs = os.path.join(tmp, f"vcr{turns}.yaml")
                with vcr.VCR(serializer="yaml").use_cassette(theirs):
                    converse(url, turns)
                ours_load = min(cpu(lambda p=ours: replay.load(p)) for _ in range(3))
                vcr_load = cpu(lambda p=theirs: vcr.cassette.Cassette.load(
                    path=p, serializer=yamlserializer))
                with replay.play(ours, unused="fail"):
                    converse(url, turns)  # the recording really replays
                o, v = os.path.getsize(ours), os.path.getsize(theirs)
                rows.append((turns, o, ours_load, v, vcr_load, last))
                print(f"{turns:>6}{last / 1024:>9.0f}KB{sent / 2**20:>7.1f}MB"
                      f"{o / 1024:>8.0f}KB{ours_load * 1e3:>7.1f}ms{v / 1024:>10.0f}KB"
                      f"{vcr_load * 1e3:>7.0f}ms{v / o:>10.0f}x")
    finally:
        proc.kill()
        proc.wait()
    print("\nsize growth from one size to the next (linear growth: the turns' ratio; "
          "quadratic: its square)")
    for (t0, o0, _, v0, _, _), (t1, o1, _, v1, _, _) in itertools.pairwise(rows):
        print(f"  {t1}/{t0} turns (x{t1 / t0:.1f}): agent-replay x{o1 / o0:.2f}   "
              f"vcrpy yaml x{v1 / v0:.2f}")
    if len(rows) >= 2:
        (t0, o0, _, v0, _, _), (t1, o1, l1, v1, vl1, _) = rows[-2], rows[-1]
        print(f"load at {t1} turns: vcrpy-yaml / agent-replay {vl1 / max(l1, 1e-9):.0f}x; "
              f"size {v1 / o1:.0f}x")
        goal("growth.linear", o1 / o0, 2.3, "<=", unit="x",
             what=f"cassette size at {t1} turns / at {t0} turns",
             detail=f"{o0 / 1024:.0f} KB -> {o1 / 1024:.0f} KB; vcrpy-yaml x{v1 / v0:.2f}")


if __name__ == "__main__":
    main()
