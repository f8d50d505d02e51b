"""requests, urllib3 and aiohttp in the same event log as httpx; matching; network block."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import httpx2
import openai
import pytest
import requests
import urllib3

import replay

ROOT = Path(__file__).resolve().parents[1]
for p in (str(ROOT), str(ROOT / "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from test_http_stream import LocalServer  # noqa: E402

from fixtures.emulator import Emulator, Script, ToolCall, Turn  # noqa: E402

HI: Any = [{"role": "user", "content": "weather in Paris?"}]


def http_events(path: Path) -> list[replay.Event]:
    return sorted((e for e in replay.load(path).events if e.channel == "http"),
                  key=lambda e: e.seq)


@replay.tool
def search(url: str, q: str) -> Any:
    """A tool made with requests."""
    return requests.get(f"{url}/search", params={"q": q}, timeout=5).json()


async def fetch(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.post(url, json={"city": "Paris", "units": "C"}) as r:
        return await r.json()


def mixed_agent(llm: str, tools: str) -> list[Any]:
    """An LLM (openai over httpx2) that calls tools made with requests and aiohttp."""
    out: list[Any] = []
    with openai.OpenAI(base_url=llm + "/v1", api_key="k", max_retries=0) as client:
        first = client.chat.completions.create(model="m", messages=HI)
        out.append(first.model_dump())
        out.append(requests.get(tools + "/weather?city=Paris", timeout=5).json())

        async def gather() -> list[Any]:
            async with aiohttp.ClientSession() as session:
                return await asyncio.gather(fetch(session, tools + "/a"),
                                            fetch(session, tools + "/b"))
        out.append(asyncio.run(gather()))
        out.append(urllib3.request("GET", tools + "/u3").json())
        out.append(search(tools, "rain"))
        out.append(httpx.get(tools + "/json?b=2&a=1").json())
        out.append(client.chat.completions.create(model="m", messages=HI).model_dump())
    return out


def test_mixed_clients_keep_one_global_order_and_replay_offline(tmp_path: Path) -> None:
    path = tmp_path / "mixed.replay"
    emu = Emulator(Script([Turn(tool_calls=[ToolCall("weather", {"city": "Paris"})]),
                           Turn(text="It is sunny")])).start()
    tools = LocalServer()
    llm_url, tools_url = emu.url, tools.url
    try:
        with replay.record(path):
            recorded = mixed_agent(llm_url, tools_url)
    finally:
        emu.stop()
        tools.stop()
    with replay.play(path, unused="fail") as run:
        replayed = mixed_agent(llm_url, tools_url)
    assert run.result is not None and run.result.ok
    assert replayed == recorded
    events = http_events(path)
    clients = [(e.meta["client"], e.parent is not None) for e in events]
    assert clients == [("httpx2", False), ("urllib3", False), ("aiohttp", False),
                       ("aiohttp", False), ("urllib3", False), ("urllib3", True),
                       ("httpx", False), ("httpx2", False)]
    tasks = {e.task for e in events if e.meta["client"] == "aiohttp"}
    assert len(tasks) == 2  # gather's two tasks, matched per task on replay
    assert all(e.response["status"] == 200 for e in events)  # type: ignore[index]
    assert events[6].request["url"].endswith("/json?a=1&b=2")  # type: ignore[index]


def test_identical_requests_are_answered_in_recorded_order_per_task(tmp_path: Path) -> None:
    path = tmp_path / "same.replay"
    srv = LocalServer()

    def agent() -> list[Any]:
        def three() -> list[int]:
            return [requests.get(srv.url + "/count", timeout=5).json()["n"] for _ in range(3)]

        async def task() -> list[int]:
            async with httpx2.AsyncClient() as c:
                return [(await c.get(srv.url + "/count")).json()["n"] for _ in range(2)]

        async def both() -> list[list[int]]:
            return list(await asyncio.gather(task(), task()))
        return [three(), asyncio.run(both())]

    with replay.record(path):
        recorded = agent()
    srv.stop()
    for _ in range(2):
        with replay.play(path, unused="fail"):
            assert agent() == recorded
    assert sorted(recorded[0] + recorded[1][0] + recorded[1][1]) == list(range(1, 8))


def test_match_on_and_matcher_functions(tmp_path: Path) -> None:
    path = tmp_path / "match.replay"
    srv = LocalServer()

    def agent(body: str, header: str) -> Any:
        return httpx.post(srv.url + "/echo?z=1&a=2", content=body,
                          headers={"X-Trace": header}).json()["n"]

    with replay.record(path):
        assert agent('{"b": 1, "a": [1, 2]}', "one") == 1
    srv.stop()
    with replay.play(path):  # JSON key order and headers never decide a match
        assert agent('{"a": [1, 2], "b": 1}', "two") == 1
    with pytest.raises(replay.DivergenceError, match="body"):
        with replay.play(path, unused="ignore"):
            agent('{"a": [1, 2], "b": 2}', "two")
    with replay.play(path, match_on=("method", "url")):
        assert agent("anything else", "x") == 1
    with replay.play(path, match_on=("method", "path")):
        httpx.post(srv.url + "/echo?other=1", content="x")
    with replay.play(path, match_on=lambda rec, act: True):
        httpx.get("http://127.0.0.1:9/whatever")
    with pytest.raises(ValueError, match="unknown match_on"):
        with replay.play(path, match_on=("verb",)):
            pass


def test_strict_replay_blocks_sockets_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "block.replay"
    srv = LocalServer()
    port = srv.server_address[1]
    with replay.record(path), pytest.warns(replay.UncapturedConnectionWarning):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # never blocked
    with replay.play(path) as run:
        with pytest.raises(replay.NetworkBlockedError, match=f"127.0.0.1:{port}") as info:
            socket.create_connection(("127.0.0.1", port), timeout=5)
        assert (info.value.host, info.value.port) == ("127.0.0.1", port)
        s = socket.socket()
        with pytest.raises(replay.NetworkBlockedError):
            s.connect(("127.0.0.1", port))
        with pytest.raises(replay.NetworkBlockedError):
            s.connect_ex(("localhost", port))
        s.close()
    assert run.result is not None
    with replay.play(path, allow_hosts=["localhost"]):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with replay.play(path, allow_hosts=[f"127.0.0.1:{port + 1}"]):
        with pytest.raises(replay.NetworkBlockedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
    socket.create_connection(("127.0.0.1", port), timeout=5).close()  # patches are gone
    srv.stop()


def test_requests_outside_the_run_are_blocked_on_replay(tmp_path: Path) -> None:
    path = tmp_path / "outside.replay"
    srv = LocalServer()
    with replay.record(path):
        pass
    errors: list[BaseException] = []
    go, done = threading.Event(), threading.Event()

    def foreign() -> None:  # started before the run: not part of it
        go.wait(10)
        for call in (lambda: httpx2.get(srv.url + "/json"),
                     lambda: requests.get(srv.url + "/json", timeout=5)):
            try:
                call()
            except BaseException as exc:
                errors.append(exc)
        done.set()

    threading.Thread(target=foreign, daemon=True).start()
    with replay.play(path):
        go.set()
        assert done.wait(10)
    srv.stop()
    assert len(errors) == 2
    assert all(isinstance(e, replay.NetworkBlockedError) for e in errors), errors


def test_requests_and_aiohttp_errors_replay(tmp_path: Path) -> None:
    path = tmp_path / "errors.replay"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/nothing"

    def agent() -> list[str]:
        out = []
        try:
            requests.get(url, timeout=2)
        except requests.ConnectionError as exc:
            out.append(type(exc).__name__)

        async def aio() -> None:
            async with aiohttp.ClientSession() as session:
                try:
                    await session.get(url)
                except aiohttp.ClientError as exc:
                    out.append(type(exc).__name__)
        asyncio.run(aio())
        return out

    with replay.record(path):
        recorded = agent()
    with replay.play(path, unused="fail"):
        assert agent() == recorded
    assert recorded == ["ConnectionError", "ClientConnectorError"]
    assert all(e.error is not None for e in http_events(path))


def raw_get(port: int, path: str) -> bytes:
    """GET over a socket of its own: HTTP no capture point sees."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                     .encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_recording_warns_of_connections_no_capture_point_holds(tmp_path: Path) -> None:
    """A connection a recorded run opens outside every captured client (HTTP spoken
    over a socket of its own here, as clients with their own HTTP/1.1 code do) is
    traffic the cassette lacks: recording warns once per address, naming the code that
    connected. Captured clients (httpx, requests, aiohttp, urllib.request) and a
    recorded tool's body do not warn."""
    srv = LocalServer()
    path = tmp_path / "uncaptured.replay"

    @replay.tool
    def lookup() -> int:
        with urllib.request.urlopen(srv.url + "/json", timeout=5) as r:
            return len(r.read())

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with replay.record(path):
            httpx.get(srv.url + "/json")
            requests.get(srv.url + "/json", timeout=5)

            async def fetch_one() -> None:
                async with aiohttp.ClientSession() as session:
                    await fetch(session, srv.url + "/json")

            asyncio.run(fetch_one())
            lookup()
            with urllib.request.urlopen(srv.url + "/json", timeout=5) as r:
                r.read()
            assert not [w for w in seen if w.category is replay.UncapturedConnectionWarning]
            for _ in range(2):
                raw_get(srv.server_address[1], "/json")
        raw_get(srv.server_address[1], "/json")  # outside the run
    srv.stop()
    found = [w for w in seen if w.category is replay.UncapturedConnectionWarning]
    assert len(found) == 1, [str(w.message) for w in found]
    message = str(found[0].message)
    assert f"127.0.0.1:{srv.server_address[1]}" in message
    assert "replay will refuse" in message and "test_http_clients.py" in message
