"""MCP capture: an agent's MCP tools are recorded and replayed without their server.

The MCP agent (fixtures/agents/mcp_agent.py, the real ``mcp`` SDK, no change to
the program) is recorded against the fixture server (fixtures/mcp_server) over
stdio and over streamable HTTP, asking the loopback LLM emulator in between,
then replayed ten times with nothing to talk to: the stdio server would write
a marker file if it started, the HTTP server and the emulator are stopped and
listeners on their ports count every connection. Every replay prints the
recording's stdout byte for byte, with no divergence and no unused event.
In-process runs pin the rest: one event per request and no transport noise,
errors and progress given back as recorded, a changed tool argument is a
divergence naming the MCP tool, ``mcp.Client`` (server/discover), and a stdio
server that strict replay refuses to start by any path.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from mcp import Client, ClientSession
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

import replay
from fixtures.emulator import Emulator, Script, ToolCall, Turn, When
from fixtures.mcp_server import McpHttpServer, stdio_parameters
from replay._capture.mcp import ServerNotStartedError
from tests._portguard import PortGuard

ROOT = Path(__file__).resolve().parents[1]
PLAYS = int(os.environ.get("MCP_PLAYS", "3"))  # the conformance suite replays its agent 10x
UNWRAPPED = {"stdio_client": stdio_client}
"""The SDK's own ``stdio_client`` (a dict: a run rebinds module globals, not this)."""

MARKED_AGENT = '''\
"""The MCP agent, its stdio server started by a command that leaves a marker file."""
import sys

from mcp.client.stdio import StdioServerParameters

from fixtures.agents import mcp_agent

MARKER = sys.argv.pop(1)
LAUNCH = ("import pathlib, runpy, sys; pathlib.Path(sys.argv[1]).write_text('started'); "
          "sys.argv[1:] = ['--transport', 'stdio']; "
          "runpy.run_module('fixtures.mcp_server', run_name='__main__')")


def stdio_server(python=None):
    return StdioServerParameters(command=sys.executable, args=["-c", LAUNCH, MARKER],
                                 cwd=str(mcp_agent.ROOT))


mcp_agent.stdio_server = stdio_server
mcp_agent.main()
'''


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED="0")
    return subprocess.run([sys.executable, "-m", "replay._cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def _script() -> list[Turn]:
    return [Turn(tool_calls=[ToolCall("lookup_order", {"order_id": "A-1042"})]),
            Turn(text="Your shoes are in transit; they cost 49.90 USD.",
                 when=When(tool_result_contains="in transit"))]


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_agent_replays_exactly_without_its_server(transport: str, tmp_path: Path) -> None:
    agent = tmp_path / "marked_agent.py"
    agent.write_text(MARKED_AGENT)
    marker = tmp_path / "server-started"
    cassette = str(tmp_path / "mcp.replay")
    program = ["--", sys.executable, str(agent), str(marker), "--progress"]
    ports: list[int] = []
    started: list[Emulator | McpHttpServer] = []
    try:
        if transport == "http":  # over HTTP the agent asks the model too: httpx is
            emu = Emulator(Script(_script())).start()  # recorded, the MCP transport's
            started.append(emu)  # httpx2 is not
            server = McpHttpServer().start()
            started.append(server)
            ports = [emu.port, server.port]
            program += ["--base-url", emu.openai_base_url, "--http", server.url]
        rec = _cli("record", "-o", cassette, *program)
    finally:
        for one in started:
            one.stop()
    assert rec.returncode == 0, rec.stderr[-3000:]
    assert ("model: Your shoes are in transit" in rec.stdout) is (transport == "http")
    assert "countdown: liftoff after progress [1.0, 2.0, 3.0]" in rec.stdout
    assert marker.exists() is (transport == "stdio")
    marker.unlink(missing_ok=True)
    _check_cassette(cassette, ports[0] if ports else None)

    guards = [PortGuard(port) for port in ports]
    try:
        with ThreadPoolExecutor(4) as pool:
            plays = list(pool.map(lambda _: _cli("play", cassette, "--unused", "fail", *program),
                                  range(PLAYS)))
    finally:
        for guard in guards:
            guard.close()
    for play in plays:
        assert play.returncode == 0, play.stderr[-3000:]
        assert play.stdout == rec.stdout
        assert "0 divergence(s)" in play.stderr and "0 unused" in play.stderr, play.stderr[-2000:]
    assert not marker.exists(), "replay started the stdio server"
    assert [g.connections for g in guards] == [0] * len(guards)


def _check_cassette(path: str, emulator_port: int | None) -> None:
    """One event per MCP request, nothing from the transports, the model calls kept."""
    events = sorted(replay.read_cassette(path).events, key=lambda ev: ev.seq)
    channels = [ev.channel for ev in events]
    assert "sleep" not in channels  # the stdio transport's exit polls are not recorded
    http = [ev for ev in events if ev.channel == "http"]  # the MCP transport's httpx2: none
    assert [str(ev.request["url"]) for ev in http] == [
        f"http://127.0.0.1:{emulator_port}/v1/chat/completions"] * (2 if emulator_port else 0)
    methods = [ev.request["method"] for ev in events if ev.channel == "mcp"]
    assert methods == ["initialize", "tools/list", *(["tools/list"] if emulator_port else []),
                       "resources/read", "resources/read", "prompts/list", "prompts/get"]
    tools = [ev for ev in events if ev.channel.startswith("tool:")]
    assert sorted({ev.channel for ev in tools}) == [
        "tool:add", "tool:countdown", "tool:lookup_order", "tool:next_ticket", "tool:refund",
        "tool:server_stats", "tool:slow_echo"]
    add = next(ev for ev in tools if ev.channel == "tool:add")
    assert add.request["args"] == {"a": 2, "b": 40}
    refund = next(ev for ev in tools if ev.channel == "tool:refund")
    assert refund.error is None and refund.response["isError"] is True
    countdown = next(ev for ev in tools if ev.channel == "tool:countdown")
    came = [json.loads(c.data) for c in countdown.chunks]  # progress, log messages
    assert [c[1] for c in came if c[0] == "progress"] == [1, 2, 3]
    assert [c[2]["data"] for c in came if c[0] == "notify" and c[1] == "notifications/message"
            ] == ["countdown 3", "countdown 2", "countdown 1"]
    missing = [ev for ev in events if ev.error is not None]
    assert len(missing) == 1 and missing[0].error.type == "mcp.shared.exceptions.MCPError"
    assert missing[0].response == {"error": {"code": -32602, "message": "no order 'Z-0'",
                                             "data": {"uri": "orders://Z-0"}}}


# -- in-process ------------------------------------------------------------------------
async def _session_program(b: int, clock_reads: list[float]) -> list[Any]:
    """A small program on a ClientSession over stdio; what it saw."""
    out: list[Any] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        clock_reads.append(time.time())  # the callback's own input: nested, recorded
        out.append(("progress", value, message))

    async def on_log(params: Any) -> None:
        out.append(("log", params.level, params.data))

    async def on_message(message: Any) -> None:
        if not isinstance(message, Exception):
            out.append(("message", message.method))

    async with stdio_client(stdio_parameters()) as (read, write):
        async with ClientSession(read, write, logging_callback=on_log,
                                 message_handler=on_message) as session:
            await session.initialize()
            added = await session.call_tool("add", {"a": 2, "b": b})
            out.append(added.structured_content)
            ticket = await session.call_tool("next_ticket", {"queue": "q"})
            out.append(ticket.structured_content)
            done = await session.call_tool("countdown", {"n": 2}, progress_callback=on_progress)
            out.append(done.content[0].text)
            try:
                await session.read_resource("orders://Z-0")
            except MCPError as exc:
                out.append((type(exc).__name__, exc.code, exc.message, exc.data))
    await asyncio.sleep(0.05)  # late progress callbacks have run
    return out


@pytest.fixture(scope="module")
def session_cassette(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[Any]]]:
    path = str(tmp_path_factory.mktemp("mcp") / "session.replay")
    with replay.record(path):
        seen = asyncio.run(_session_program(40, []))
    yield path, seen


def test_replay_gives_back_results_errors_and_progress(
        session_cassette: tuple[str, list[Any]]) -> None:
    path, recorded = session_cassette
    assert ("MCPError", -32602, "no order 'Z-0'", {"uri": "orders://Z-0"}) in recorded
    with replay.play(path) as run:
        replayed = asyncio.run(_session_program(40, []))
    assert replayed == recorded  # the ticket's nonce, pid and time included
    assert run.result.divergences == () and run.result.unconsumed == ()
    events = replay.read_cassette(path).events
    countdown = next(ev for ev in events if ev.channel == "tool:countdown")
    nested = [ev for ev in events if ev.parent is not None]
    assert nested and {ev.parent for ev in nested} == {countdown.seq}
    assert {ev.channel for ev in nested} == {"clock"}


def test_changed_tool_argument_is_a_divergence_naming_the_tool(
        session_cassette: tuple[str, list[Any]]) -> None:
    path, _ = session_cassette
    with pytest.raises(BaseExceptionGroup) as caught, replay.play(path) as run:
        asyncio.run(_session_program(41, []))  # raised in the transports' task groups
    found, _rest = caught.value.split(replay.DivergenceError)
    assert found is not None
    message = str(found.exceptions[0].exceptions[0])
    assert "'tool:add'" in message and "args.b: 40 -> 41" in message, message
    assert [d.channel for d in run.result.divergences] == ["tool:add"]


def test_mcp_client_discover_path_replays(tmp_path: Path) -> None:
    async def program() -> list[Any]:
        async with Client(stdio_parameters()) as client:
            tools = await client.list_tools()
            result = await client.call_tool("next_ticket", {"queue": "c"})
            return [client.session.protocol_version, sorted(t.name for t in tools.tools),
                    result.structured_content]

    path = str(tmp_path / "client.replay")
    with replay.record(path):
        recorded = asyncio.run(program())
    with replay.play(path) as run:
        replayed = asyncio.run(program())
    events = sorted(replay.read_cassette(path).events, key=lambda ev: ev.seq)
    methods = [ev.request["method"] for ev in events
               if ev.channel in ("mcp", "tool:next_ticket")]
    assert replayed == recorded
    assert run.result.divergences == () and run.result.unconsumed == ()
    assert methods == ["server/discover", "tools/list", "tools/call"]


def test_strict_replay_refuses_to_start_a_stdio_server_by_any_path(tmp_path: Path) -> None:
    path = str(tmp_path / "empty.replay")
    with replay.record(path):
        pass
    original: Callable[..., Any] = UNWRAPPED["stdio_client"]

    async def bypass() -> None:
        async with original(stdio_parameters()):
            raise AssertionError("a server process started")

    with replay.play(path), pytest.raises(ServerNotStartedError, match="stdio:"):
        asyncio.run(bypass())


def test_fork_goes_live_on_a_server_that_knows_the_session(tmp_path: Path) -> None:
    """The handshake the fork replays reaches the live server too: its HTTP session id
    is there when the fork's first live request goes out."""
    async def program(url: str) -> list[Any]:
        async with streamable_http_client(url) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                added = await session.call_tool("add", {"a": 1, "b": 2})
                ticket = await session.call_tool("next_ticket", {"queue": "fork"})
                return [added.structured_content, ticket.structured_content]

    path, forked = str(tmp_path / "http.replay"), str(tmp_path / "fork.replay")
    with McpHttpServer() as server:
        with replay.record(path):
            recorded = asyncio.run(program(server.url))
        at = next(ev.seq for ev in replay.read_cassette(path).events
                  if ev.channel == "tool:next_ticket")
        with replay.fork(path, at=at, output=forked) as run:
            live = asyncio.run(program(server.url))
    assert live[0] == recorded[0] and live[1]["queue"] == "fork"
    assert live[1]["nonce"] != recorded[1]["nonce"]  # asked the live server
    assert run.result.divergences == ()
    with replay.play(forked) as again:  # the fork's cassette replays on its own
        assert asyncio.run(program(server.url)) == live
    assert again.result.unconsumed == ()
