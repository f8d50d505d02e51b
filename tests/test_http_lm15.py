"""lm15's own socket transports (DSPy's default engine): recorded as ``http`` events and
replayed as lm15's own response type, with no socket. The transports as DSPy vendors
them, against a loopback server stopped before every replay (the DSPy agent itself is in
tests/test_frameworks.py)."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

import replay

transports: Any = pytest.importorskip("dspy._vendor.lm15.transports")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_http_stdlib import SECRET, Server, http_events  # noqa: E402


def request(url: str, body: bytes = b"", method: str = "POST") -> Any:
    return transports.TransportRequest(method=method, url=url, body=body, headers=[
        ("Content-Type", "application/json"), ("Authorization", f"Bearer {SECRET}")])


def sync_agent(url: str) -> list[Any]:
    out: list[Any] = []
    with transports.StdlibTransport() as t:
        with t.stream(request(url + "/json", b'{"b": 1, "a": 2}')) as r:
            out.append((type(r).__name__, r.status, r.reason, r.header("content-type"),
                        json.loads(r.read())))
        with t.stream(request(url + "/sse?n=3", method="GET")) as r:
            out.append(list(r.iter_lines()))
        with t.stream(request(url + "/sse?n=50", method="GET")) as r:  # closed early
            out.append(next(iter(r)))
    return out


async def async_agent(url: str) -> list[Any]:
    out: list[Any] = []
    t = transports.StdlibAsyncTransport()
    async with t.stream(request(url + "/sse?n=2", method="GET")) as r:
        out.append((type(r).__name__, r.status, [line async for line in r.aiter_lines()]))
    r = await t.stream(request(url + "/json", b"[1]"))
    out.append(json.loads(await r.read()))
    return out


def test_sync_and_async_transports_record_and_replay_offline(tmp_path: Path) -> None:
    server = Server()
    path = tmp_path / "lm15.replay"

    def agent() -> list[Any]:
        return [sync_agent(server.url), asyncio.run(async_agent(server.url))]

    with replay.record(path):
        recorded = agent()
    server.stop()
    for _ in range(3):
        with replay.play(path, unused="fail") as run:
            assert agent() == recorded
        assert run.result is not None and run.result.ok
    first = recorded[0][0]
    assert first[:3] == ("TransportResponse", 200, "OK")
    assert first[4]["body"] == '{"b": 1, "a": 2}'
    assert recorded[0][1][-2:] == [b"data: [DONE]\n", b"\n"]
    assert recorded[1][0][0] == "AsyncTransportResponse"
    events = http_events(path)
    assert [e.meta["client"] for e in events] == ["lm15"] * 5
    assert events[0].request["body"] == {"a": 2, "b": 1}  # type: ignore[index]
    assert events[2].meta["stream"] == "closed-early"
    assert SECRET.encode() not in path.read_bytes()


def test_transport_errors_replay_as_their_type(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "lm15-errors.replay"

    def agent() -> list[str]:
        out = []
        with transports.StdlibTransport() as t:
            try:
                t.stream(request(f"http://127.0.0.1:{port}/v1/chat/completions", b"{}"))
            except transports.TransportError as exc:
                out.append(type(exc).__name__)
        return out

    with replay.record(path):
        recorded = agent()
    with replay.play(path, unused="fail"):
        assert agent() == recorded
    assert recorded == ["ConnectError"]
