"""The MCP fixture server (fixtures/mcp_server) and agent, driven by the real ``mcp`` SDK.

Both transports the recorder has to handle: stdio (the client starts the server
process) and streamable HTTP (a server the test starts on 127.0.0.1). Nothing here
records yet; these tests pin down what the fixtures do, so the recorder's tests can
rely on them.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

import httpx
from mcp import ClientSession
from mcp.client.stdio import stdio_client

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the fixtures package is not installed; import it from the tree
    sys.path.insert(0, str(ROOT))

from fixtures.agents import mcp_agent  # noqa: E402
from fixtures.emulator import Emulator, ToolCall, Turn, When  # noqa: E402
from fixtures.mcp_server import (  # noqa: E402
    SERVER_NAME,
    SERVER_VERSION,
    McpHttpServer,
    stdio_parameters,
)

http_client: Any = mcp_agent._http_client  # streamable_http_client (2.x) / streamablehttp_client

TOOLS = ["add", "countdown", "lookup_order", "next_ticket", "refund", "server_stats", "slow_echo"]


def wire(result: Any) -> dict[str, Any]:
    out: dict[str, Any] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    return out


def text(result: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in result.get("content", []))


@pytest.fixture
def http_server() -> Iterator[Callable[..., McpHttpServer]]:
    """``http_server(**options)`` starts the fixture server over HTTP; all are stopped after."""
    started: list[McpHttpServer] = []

    def start(**options: Any) -> McpHttpServer:
        server = McpHttpServer(**options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@asynccontextmanager
async def session_over(transport: str, start_http: Callable[..., McpHttpServer]
                       ) -> AsyncIterator[ClientSession]:
    """An initialized ClientSession with a fresh fixture server over ``transport``."""
    if transport == "stdio":
        async with stdio_client(stdio_parameters()) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session
    else:
        server = start_http()
        async with http_client(server.url) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                yield session


async def call(session: ClientSession, name: str, **arguments: Any) -> dict[str, Any]:
    return wire(await session.call_tool(name, arguments))


TRANSPORTS = pytest.mark.parametrize("transport", ["stdio", "http"])


@TRANSPORTS
async def test_handshake_and_tool_listing(transport: str,
                                          http_server: Callable[..., McpHttpServer]) -> None:
    async with session_over(transport, http_server) as session:
        init = wire(await session.initialize())  # idempotent in mcp 2: the stored result
        assert init["serverInfo"] == {"name": SERVER_NAME, "version": SERVER_VERSION}
        assert init["capabilities"]["tools"] is not None
        listed = wire(await session.list_tools())
        tools = {t["name"]: t for t in listed["tools"]}
        assert sorted(tools) == TOOLS
        assert tools["lookup_order"]["inputSchema"]["required"] == ["order_id"]
        assert tools["lookup_order"]["outputSchema"]["title"] == "Order"
        assert "outputSchema" in tools["add"]  # int return: wrapped as {"result": ...}


@TRANSPORTS
async def test_tool_results_errors_and_structured_output(
        transport: str, http_server: Callable[..., McpHttpServer]) -> None:
    async with session_over(transport, http_server) as session:
        order = await call(session, "lookup_order", order_id="A-1042")
        assert order["isError"] is False
        assert order["structuredContent"] == {"order_id": "A-1042", "item": "Trail running shoes",
                                              "total": 49.9, "currency": "USD",
                                              "status": "in transit"}
        assert json.loads(text(order)) == order["structuredContent"]

        assert (await call(session, "add", a=2, b=3))["structuredContent"] == {"result": 5}

        refund = await call(session, "refund", order_id="A-1042", amount=4990.0)
        assert refund["isError"] is True
        assert "declined by the payment provider" in text(refund)
        assert "structuredContent" not in refund
        missing = await call(session, "lookup_order", order_id="Z-0")
        assert missing["isError"] is True and "no order 'Z-0'" in text(missing)
        unknown = await call(session, "no_such_tool")
        assert unknown["isError"] is True and "Unknown tool" in text(unknown)


@TRANSPORTS
async def test_next_ticket_is_not_deterministic(transport: str,
                                                http_server: Callable[..., McpHttpServer]) -> None:
    async with session_over(transport, http_server) as session:
        first = (await call(session, "next_ticket"))["structuredContent"]
        second = (await call(session, "next_ticket", queue="refunds"))["structuredContent"]
    assert (first["ticket"], second["ticket"]) == (1, 2)
    assert (first["queue"], second["queue"]) == ("support", "refunds")
    assert first["nonce"] != second["nonce"]
    assert first["server_pid"] == second["server_pid"] != os.getpid()  # a real server process
    assert second["issued_at"] >= first["issued_at"] > 1.6e9
    async with session_over(transport, http_server) as session:  # a new server: a new process
        third = (await call(session, "next_ticket"))["structuredContent"]
    assert third["ticket"] == 1 and third["server_pid"] != first["server_pid"]


@TRANSPORTS
async def test_parallel_calls_on_one_session_overlap(
        transport: str, http_server: Callable[..., McpHttpServer]) -> None:
    async with session_over(transport, http_server) as session:
        echoes = await asyncio.gather(*(
            call(session, "slow_echo", text=w, seconds=0.3) for w in ("a", "b", "c")))
        assert [text(e) for e in echoes] == ["a", "b", "c"]
        stats = (await call(session, "server_stats"))["structuredContent"]
    assert stats == {"calls": 3, "max_in_flight": 3}


@TRANSPORTS
async def test_progress_resources_prompts_and_protocol_errors(
        transport: str, http_server: Callable[..., McpHttpServer]) -> None:
    from mcp.shared.exceptions import MCPError

    async with session_over(transport, http_server) as session:
        seen: list[tuple[float, float | None, str | None]] = []
        all_seen = asyncio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))
            if len(seen) == 3:
                all_seen.set()

        result = await session.call_tool("countdown", {"n": 3}, progress_callback=on_progress)
        assert text(wire(result)) == "liftoff"
        # progress callbacks run in tasks of their own: the last may land after the result
        await asyncio.wait_for(all_seen.wait(), 5)
        assert sorted(seen) == [(1.0, 3.0, "step 1"), (2.0, 3.0, "step 2"), (3.0, 3.0, "step 3")]

        doc = wire(await session.read_resource("orders://A-1042"))
        assert json.loads(doc["contents"][0]["text"])["total"] == 49.9
        assert doc["contents"][0]["mimeType"] == "application/json"
        with pytest.raises(MCPError) as caught:
            await session.read_resource("orders://Z-0")
        assert caught.value.error.code == -32602
        assert caught.value.error.data == {"uri": "orders://Z-0"}

        prompts = wire(await session.list_prompts())
        assert [p["name"] for p in prompts["prompts"]] == ["refund_request"]
        prompt = wire(await session.get_prompt("refund_request", {"order_id": "A-1042"}))
        assert "refund of order A-1042" in prompt["messages"][0]["content"]["text"]
        assert wire(await session.send_ping()) == {}


@pytest.mark.parametrize("stateless", [False, True])
def test_http_wire_session_id_and_json_response(
        stateless: bool, http_server: Callable[..., McpHttpServer]) -> None:
    """What the recorder sees on the wire: JSON or SSE answers, a session id or none."""
    server = http_server(stateless=stateless, json_response=True)
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}}
    headers = {"accept": "application/json, text/event-stream"}
    response = httpx.post(server.url, json=body, headers=headers, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["result"]["serverInfo"]["name"] == SERVER_NAME
    assert ("mcp-session-id" in response.headers) is not stateless


def test_http_server_stops_and_frees_its_port() -> None:
    server = McpHttpServer().start()
    proc = server.proc
    assert proc is not None and server.url.startswith("http://127.0.0.1:")
    port = server.port
    server.stop()
    server.stop()  # twice is fine
    assert proc.poll() is not None
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


@TRANSPORTS
async def test_agent_transcript_changes_only_in_the_ticket(
        transport: str, http_server: Callable[..., McpHttpServer]) -> None:
    url = http_server().url if transport == "http" else None
    first = await mcp_agent.run(url, progress=True)
    second = await mcp_agent.run(url)
    assert first[0] == (f"connected to {SERVER_NAME} {SERVER_VERSION} over {transport}, "
                        "protocol 2025-11-25")
    assert first[1] == "tools: " + ", ".join(TOOLS)
    assert "parallel slow_echo: one two three" in first
    assert "countdown: liftoff after progress [1.0, 2.0, 3.0]" in first
    assert any(line.startswith("refund: isError=True") for line in first)
    assert "resource orders://Z-0: MCPError -32602 no order 'Z-0'" in first
    ticket_lines = [line for line in first + second if line.startswith("next_ticket:")]
    assert len(ticket_lines) == 2 and ticket_lines[0] != ticket_lines[1]

    def stable(lines: list[str]) -> list[str]:  # countdown ran in the first run only
        return [line for line in lines
                if not line.startswith(("next_ticket:", "countdown:", "server_stats:"))]

    assert stable(first) == stable(second)
    if transport == "stdio":  # a server per run; over HTTP the one server's counts go on
        assert first[-1] == 'server_stats: {"calls": 9, "max_in_flight": 3}'
        assert second[-1] == 'server_stats: {"calls": 8, "max_in_flight": 3}'


async def test_agent_asks_the_model_between_mcp_calls(
        emulator: Callable[..., Emulator]) -> None:
    emu = emulator(
        Turn(tool_calls=[ToolCall("lookup_order", {"order_id": "A-1042"})]),
        Turn(text="Your shoes are in transit; they cost 49.90 USD.",
             when=When(tool_result_contains="in transit")))
    lines = await mcp_agent.run(base_url=emu.openai_base_url)
    i = lines.index('model called lookup_order({"order_id": "A-1042"}): isError=False')
    assert lines[i + 1] == "model: Your shoes are in transit; they cost 49.90 USD."
    assert lines[i - 1].startswith("lookup_order: ") and lines[i + 2] == "add: 42"
    assert emu.request_count == 2
    tools = {t["function"]["name"] for t in emu.requests[0].json()["tools"]}
    assert tools == set(TOOLS)


def test_agent_command_line_over_stdio() -> None:
    done = subprocess.run([sys.executable, "-m", "fixtures.agents.mcp_agent"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"connected to {SERVER_NAME}") and lines[-1] == (
        'server_stats: {"calls": 8, "max_in_flight": 3}')
