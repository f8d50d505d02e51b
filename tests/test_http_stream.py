"""httpx and httpx2 at the transport level: streams, timing, early close, pacing, errors.

Timing comparisons run both sides in the same test and compare medians of a
few runs, so a slow machine slows both; the hard figures are in
bench/bench_http.py.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest

import replay

MODULES = [httpx, httpx2]


class _Handler(BaseHTTPRequestHandler):
    """``/stream?n=&ms=`` chunked SSE, ``/gzip``, ``/json``, ``/slow?ms=``, ``/count``."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: LocalServer

    def log_message(self, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/stream":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(int(q.get("n", 10))):
                time.sleep(float(q.get("ms", 0)) / 1000)
                data = f"data: {{\"i\": {i}}}\n\n".encode()
                try:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                except OSError:
                    self.server.aborted += 1
                    return
            self.wfile.write(b"0\r\n\r\n")
            return
        if url.path == "/slow":
            time.sleep(float(q.get("ms", 200)) / 1000)
        with self.server.lock:
            self.server.count += 1
            n = self.server.count
        payload = json.dumps({"path": self.path, "n": n, "body": body.decode("latin-1"),
                              "auth": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if url.path == "/gzip":
            payload = gzip.compress(payload)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_GET


class LocalServer(ThreadingHTTPServer):
    """A loopback test server in a thread; ``stop()`` releases the port."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.count = 0
        self.aborted = 0
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer()
    yield srv
    srv.stop()


@pytest.fixture
def remote() -> Iterator[str]:
    """The same server in a child process, so its threads never wait for our GIL."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from test_http_stream import "
            "LocalServer; s = LocalServer(); print(s.url, flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code, os.path.dirname(__file__)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    yield proc.stdout.readline().strip()
    proc.kill()
    proc.wait()


def read_chunks(client: Any, url: str) -> tuple[list[bytes], float]:
    """Every raw chunk of a streamed GET and the seconds until the last one."""
    t0 = time.perf_counter()
    with client.stream("GET", url) as response:
        chunks = list(response.iter_raw())
    return chunks, time.perf_counter() - t0


def first_chunk(client: Any, url: str) -> tuple[float, float]:
    """Seconds to the first body chunk, and seconds that closing the stream then took."""
    t0 = time.perf_counter()
    with client.stream("GET", url) as response:
        next(response.iter_raw())
        ttfb = time.perf_counter() - t0
        t1 = time.perf_counter()
    return ttfb, time.perf_counter() - t1


def slow_stream(mod: ModuleType) -> Any:
    """A MockTransport whose body is 200 chunks, the first at once, then one per 5 ms."""
    class Body(mod.SyncByteStream):  # type: ignore[name-defined,misc]
        def __iter__(self) -> Iterator[bytes]:
            for i in range(200):
                if i:
                    time.sleep(0.005)
                yield f"data: {i}\n\n".encode()

    return mod.MockTransport(lambda request: mod.Response(200, stream=Body()))


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.__name__)
def test_recorder_adds_under_a_millisecond_to_the_first_chunk(mod: ModuleType,
                                                              tmp_path: Path) -> None:
    """Our own cost, without network noise: the same in-process transport, bare and
    wrapped by the recorder; medians of interleaved runs."""
    plain_client = mod.Client(transport=slow_stream(mod))
    recorded_client = mod.Client(transport=replay.httpx_transport(slow_stream(mod)))
    plain, recorded = [], []
    for i in range(15):
        plain.append(first_chunk(plain_client, "http://mock.test/s")[0])
        with replay.record(tmp_path / f"mock{i}.replay"):
            ttfb, closing = first_chunk(recorded_client, "http://mock.test/s")
        recorded.append(ttfb)
        assert closing < 0.05  # closing early does not drain the other 199 chunks
    delta = statistics.median(recorded) - statistics.median(plain)
    assert delta < 0.001, (statistics.median(plain), statistics.median(recorded))
    [ev] = [e for e in replay.load(tmp_path / "mock3.replay").events if e.channel == "http"]
    assert ev.meta["stream"] == "closed-early" and [c.data for c in ev.chunks] == [
        b"data: 0\n\n"]


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.__name__)
def test_chunks_reach_the_caller_as_they_arrive_and_early_close_does_not_drain(
        mod: ModuleType, remote: str, tmp_path: Path) -> None:
    """Over loopback, against a server in another process: compared on the fastest of
    interleaved runs, since scheduling noise on a loaded machine only ever adds time."""
    url = remote + "/stream?n=200&ms=5"
    plain, recorded, closing = [], [], []
    with mod.Client() as client:
        first_chunk(client, url)  # warm the connection pool and imports
        for i in range(12):
            # Both sides idle 30 ms first: the server finishes the stream closed
            # before, and starting the session (a CPU burst) is not what is timed.
            time.sleep(0.03)
            plain.append(first_chunk(client, url)[0])
            with replay.record(tmp_path / f"ttfb{i}.replay"):
                time.sleep(0.03)
                ttfb, close_s = first_chunk(client, url)
            recorded.append(ttfb)
            closing.append(close_s)
    # The millisecond comparison over loopback is a measurement, not an assertion:
    # bench/bench_http.py reports it (docs/performance.md), and the in-process test
    # above asserts our own added cost. Here: chunks are passed on as they arrive.
    assert max(recorded) < 0.5, (sorted(plain), sorted(recorded))  # not the whole 1 s
    assert max(closing) < 0.2  # the remaining 199 chunks x 5 ms were not read
    [ev] = [e for e in replay.load(tmp_path / "ttfb3.replay").events if e.channel == "http"]
    assert ev.meta["stream"] == "closed-early" and len(ev.chunks) == 1
    assert ev.chunks[0].data == b'data: {"i": 0}\n\n'


def test_instant_and_paced_replay_keep_chunk_boundaries(remote: str, tmp_path: Path) -> None:
    path = tmp_path / "stream.replay"
    url = remote + "/stream?n=200&ms=5"
    with httpx2.Client() as client:
        with replay.record(path):
            recorded, recorded_s = read_chunks(client, url)
        instant = []
        for _ in range(3):
            with replay.play(path):
                chunks, seconds = read_chunks(client, url)
            assert chunks == recorded
            instant.append(seconds)
        with replay.play(path, speed=1.0):
            paced, paced_s = read_chunks(client, url)
    assert len(recorded) == 200 and paced == recorded
    assert statistics.median(instant) < 0.05 * recorded_s, (instant, recorded_s)
    assert abs(paced_s - recorded_s) <= 0.10 * recorded_s, (paced_s, recorded_s)
    [ev] = [e for e in replay.load(path).events if e.channel == "http"]
    assert [c.data for c in ev.chunks] == recorded and "stream" not in ev.meta
    at = [c.at_ns for c in ev.chunks]
    assert at == sorted(at) and at[-1] > 0.9 * 200 * 5e6


async def test_async_streams_record_and_replay_at_pace(server: LocalServer,
                                                       tmp_path: Path) -> None:
    path = tmp_path / "astream.replay"
    url = server.url + "/stream?n=40&ms=5"

    async def read(client: httpx.AsyncClient) -> tuple[list[bytes], float]:
        t0 = time.perf_counter()
        async with client.stream("GET", url) as response:
            chunks = [c async for c in response.aiter_raw()]
        return chunks, time.perf_counter() - t0

    transport = replay.httpx_transport(httpx.AsyncHTTPTransport())  # wraps a default one
    async with httpx.AsyncClient(transport=transport) as client:
        async with replay.record(path):
            recorded, recorded_s = await read(client)
        server.stop()
        async with replay.play(path):
            instant, instant_s = await read(client)
        async with replay.play(path, speed=2.0):
            paced, paced_s = await read(client)
    assert instant == paced == recorded and len(recorded) == 40
    assert len([e for e in replay.load(path).events if e.channel == "http"]) == 1
    assert instant_s < 0.05 * recorded_s
    assert abs(paced_s - recorded_s / 2) <= 0.2 * recorded_s / 2, (paced_s, recorded_s)


def test_reading_past_an_early_close_is_a_divergence(server: LocalServer,
                                                     tmp_path: Path) -> None:
    path = tmp_path / "early.replay"
    url = server.url + "/stream?n=20&ms=1"

    def agent(read_all: bool) -> list[bytes]:
        with httpx2.Client() as client, client.stream("GET", url) as response:
            if read_all:
                return list(response.iter_raw())
            it = response.iter_raw()
            return [next(it), next(it), next(it)]

    with replay.record(path):
        three = agent(False)
    with replay.play(path):
        assert agent(False) == three
    with pytest.raises(replay.DivergenceError, match="closed this stream early"):
        with replay.play(path):
            agent(True)


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.__name__)
def test_a_stream_left_open_when_the_run_stops_is_in_its_cassette(
        mod: ModuleType, server: LocalServer, tmp_path: Path) -> None:
    """An exception in the loop that reads a stream leaves it neither read to its end
    nor closed (an async SDK stream is closed only when collected, after the run):
    the run's stop writes its event as it stood, so the run replays."""
    path = tmp_path / "open.replay"
    url = server.url + "/stream?n=20&ms=1"
    held: list[Any] = []

    async def agent() -> list[bytes]:
        client = mod.AsyncClient()
        response = await client.send(client.build_request("GET", url), stream=True)
        held.append((client, response))  # kept past the run, as a caller's frame may
        got: list[bytes] = []
        async for data in response.aiter_raw():
            got.append(data)
            if len(got) == 3:
                break  # the agent stopped reading: no aclose() before the run ends
        return got

    async def run_it(session: Any) -> list[bytes]:
        async with session:
            return await agent()

    three = asyncio.run(run_it(replay.record(path)))
    events = replay.read_cassette(path).events
    assert [e.channel for e in events] == ["http"]
    assert events[0].meta["stream"] == "left-open"
    assert b"".join(c.data for c in events[0].chunks) == b"".join(three)
    held.clear()
    run = replay.play(path, unused="fail")
    assert asyncio.run(run_it(run)) == three
    assert run.result is not None and run.result.ok


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.__name__)
def test_gzip_bodies_are_stored_decoded(mod: ModuleType, server: LocalServer,
                                        tmp_path: Path) -> None:
    path = tmp_path / "gzip.replay"
    with mod.Client() as client:
        with replay.record(path):
            live = client.get(server.url + "/gzip?x=1")
        server.stop()
        with replay.play(path):
            again = client.get(server.url + "/gzip?x=1")
    assert live.headers["content-encoding"] == "gzip"
    assert again.json() == live.json() and "content-encoding" not in again.headers
    [ev] = [e for e in replay.load(path).events if e.channel == "http"]
    assert ev.meta["decoded"] == "gzip"
    assert json.loads(b"".join(c.data for c in ev.chunks)) == live.json()


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.__name__)
def test_transport_errors_replay_as_the_same_exception_with_its_request(
        mod: ModuleType, server: LocalServer, tmp_path: Path) -> None:
    path = tmp_path / "errors.replay"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]

    def agent() -> list[str]:
        out = []
        with mod.Client(timeout=0.05) as client:
            for url in (f"http://127.0.0.1:{closed_port}/x", server.url + "/slow?ms=300"):
                try:
                    client.get(url)
                except mod.TransportError as exc:
                    out.append(f"{type(exc).__name__} {exc.request.method} {exc.request.url}")
        return out

    with replay.record(path):
        recorded = agent()
    server.stop()
    with replay.play(path):
        replayed = agent()
    assert replayed == recorded
    assert [r.split()[0] for r in recorded] == ["ConnectError", "ReadTimeout"]


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.__name__)
def test_wrapped_transport_records_once(mod: ModuleType, server: LocalServer,
                                        tmp_path: Path) -> None:
    path = tmp_path / "wrapped.replay"
    calls: list[str] = []

    def handler(request: Any) -> Any:
        calls.append(str(request.url))
        return mod.Response(200, json={"mock": len(calls)})

    def agent() -> list[Any]:
        mock = replay.httpx_transport(mod.MockTransport(handler))
        real = replay.httpx_transport(mod.HTTPTransport())
        with mod.Client(transport=mock) as a, mod.Client(transport=real) as b:
            return [a.get("http://mock.test/a").json(), b.get(server.url + "/json").json()]

    with replay.record(path):
        recorded = agent()
    server.stop()
    with replay.play(path, unused="fail"):
        assert agent() == recorded
    events = [e for e in replay.load(path).events if e.channel == "http"]
    assert len(events) == 2 and len(calls) == 1  # one event each; the mock ran once
    assert isinstance(replay.httpx_transport(mod.MockTransport(handler)), mod.BaseTransport)
    with pytest.raises(TypeError):
        replay.httpx_transport(object())
