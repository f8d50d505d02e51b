"""Instructions a recorded httpx request costs over an unrecorded one, for callgrind.

Not a goal bench (``make bench`` does not run it): the figure the HTTP recording
work quotes (issue 16's ``http.record_overhead``), free of the machine's load.
One process, no server, no socket: bench_http.py's requests (the same URL, a JSON
body that changes every turn, a ~2 KB JSON answer) through an ``httpx.Client`` whose
default transport's connection pool answers at once, as httpcore does (a streamed
body, read by httpx as from the network). ``BENCH_RECORDING``: ``off`` (unrecorded)
or ``record`` (``replay.record``, as bench_http.py records). Run it under callgrind
with two request counts per mode; the difference over the difference in N is the
cost of one request::

    PYTHONHASHSEED=0 BENCH_RECORDING=record valgrind --tool=callgrind \\
        --callgrind-out-file=OUT python bench/callgrind_http.py 200

``bench/callgrind_http.py --compare`` runs all four and prints the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import httpcore  # noqa: E402
import httpx  # noqa: E402

FILL = "lorem ipsum dolor sit amet " * 64


class _Body:
    """A response body httpcore hands over in one piece, as a short answer arrives."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self._data

    def close(self) -> None:
        pass


class Pool:
    """httpcore's connection pool, answering every request at once (bench_http.py's
    server's answer)."""

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        sent = b"".join(request.stream)  # type: ignore[arg-type]
        turn = json.loads(sent)["messages"][-1]["content"]
        out = json.dumps({"id": "chatcmpl-" + turn, "object": "chat.completion",
                          "choices": [{"index": 0, "message": {"role": "assistant",
                                      "content": FILL[:1900]}}], "turn": turn}).encode()
        return httpcore.Response(
            200, headers=[(b"Server", b"BaseHTTP/0.6 Python/3.12"),
                          (b"Date", b"Fri, 04 Dec 2026 18:00:00 GMT"),
                          (b"Content-Type", b"application/json"),
                          (b"Content-Length", str(len(out)).encode())],
            content=_Body(out),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": b"OK"})

    def close(self) -> None:
        pass

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def body(i: int) -> dict[str, Any]:
    return {"model": "m", "temperature": 0,
            "messages": [{"role": "system", "content": "You are terse."},
                         {"role": "user", "content": f"turn {i}"}]}


def run_requests(client: httpx.Client, indices: range) -> None:
    for i in indices:
        r = client.post("http://127.0.0.1:8000/v1/chat/completions", json=body(i))
        assert r.status_code == 200 and r.json()["turn"] == f"turn {i}"


def main() -> None:
    n = int(sys.argv[1])
    mode = os.environ.get("BENCH_RECORDING", "record")
    import replay
    with tempfile.TemporaryDirectory() as tmp, httpx.Client() as client:
        client._transport._pool = Pool()  # type: ignore[attr-defined]
        run_requests(client, range(40))  # warm: imports, caches
        if mode == "off":
            run_requests(client, range(40))
            run_requests(client, range(n))
            return
        warm = replay.record(os.path.join(tmp, "warm.replay"))
        warm.start()
        run_requests(client, range(40))
        warm.stop()
        run = replay.record(os.path.join(tmp, "bench.replay"))
        run.start()
        run_requests(client, range(n))
        run.stop()


def _total(path: str) -> int:
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise ValueError(f"no totals in {path}")


def compare(ns: tuple[int, int] = (100, 300)) -> None:
    """Both modes at both Ns under callgrind: instructions per request."""
    per: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("off", "record"):
            totals = []
            for n in ns:
                out = os.path.join(tmp, f"cg.{mode}.{n}")
                env = {**os.environ, "PYTHONHASHSEED": "0", "BENCH_RECORDING": mode}
                subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                sys.executable, os.path.abspath(__file__), str(n)],
                               env=env, check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                totals.append(_total(out))
            per[mode] = (totals[1] - totals[0]) / (ns[1] - ns[0])
            print(f"{mode:>6}: {per[mode]:,.0f} instructions a request")
    print(f"recording adds {per['record'] - per['off']:,.0f} instructions a request")


if __name__ == "__main__":
    if sys.argv[1:] == ["--compare"]:
        compare()
    else:
        main()
