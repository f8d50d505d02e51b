"""The official SDKs, recorded against the local emulator and replayed with it shut down.

Every test records through the SDK's own httpx2 client (no change to the
client code), stops the emulator, replays with ``unused="fail"`` and checks
that the SDK objects, streamed event sequences and chunk counts are equal.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

import replay

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fixtures.emulator import Emulator, Failure, Script, ToolCall, Turn  # noqa: E402

HI: Any = [{"role": "user", "content": "hi"}]
WEATHER = ToolCall("get_weather", {"city": "Paris"})
OAI_TOOLS: Any = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}}}}}]
ANT_TOOLS: Any = [{"name": "get_weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}}}]
OPENAI_TURNS = [Turn(text="Hello there, friend"), Turn(text="a streamed answer"),
                Turn(tool_calls=[WEATHER]), Turn(text="Streamed with tools", tool_calls=[WEATHER]),
                Turn(text="responses plain"), Turn(text="responses streamed")]
ANTHROPIC_TURNS = [Turn(text="Hi from Claude"), Turn(text="Let me check.", tool_calls=[WEATHER]),
                   Turn(text="streamed claude"), Turn(text="Looking", tool_calls=[WEATHER])]


@pytest.fixture(scope="module", autouse=True)
def _warm_sdks() -> None:
    """One unrecorded call per SDK first: their lazy imports draw uuids at import time
    (opentelemetry), which a recording would otherwise keep and a replay not ask for."""
    with Emulator(Script([Turn(text="warm", repeat=True)])) as emu:
        with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as o:
            o.chat.completions.create(model="m", messages=HI)
        with anthropic.Anthropic(base_url=emu.url, api_key="k", max_retries=0) as a:
            a.messages.create(model="c", max_tokens=8, messages=HI)


def http_events(path: Path) -> list[replay.Event]:
    return sorted((e for e in replay.load(path).events if e.channel == "http"),
                  key=lambda e: e.seq)


def record_and_replay(tmp_path: Path, script: Script, agent: Callable[[str], Any]
                      ) -> tuple[Any, Any, Path]:
    """Run ``agent(url)`` recorded against the emulator, stop it, replay; both results."""
    path = tmp_path / "sdk.replay"
    emu = Emulator(script).start()
    url = emu.url
    try:
        with replay.record(path):
            recorded = agent(url)
    finally:
        emu.stop()
    with replay.play(path, unused="fail") as run:
        replayed = agent(url)
    assert run.result is not None and run.result.ok
    return recorded, replayed, path


async def arecord_and_replay(tmp_path: Path, script: Script,
                             agent: Callable[[str], Awaitable[Any]]) -> tuple[Any, Any, Path]:
    path = tmp_path / "sdk-async.replay"
    emu = Emulator(script).start()
    url = emu.url
    try:
        async with replay.record(path):
            recorded = await agent(url)
    finally:
        emu.stop()
    async with replay.play(path, unused="fail") as run:
        replayed = await agent(url)
    assert run.result is not None and run.result.ok
    return recorded, replayed, path


def streamed_chunks_per_event(path: Path) -> list[int]:
    return [len(e.chunks) for e in http_events(path)]


# -- OpenAI ------------------------------------------------------------------------
def openai_agent(url: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with openai.OpenAI(base_url=url + "/v1", api_key="sk-test-0123456789abcdef",
                       max_retries=0) as client:
        out["plain"] = client.chat.completions.create(model="m", messages=HI).model_dump()
        out["stream"] = [c.model_dump() for c in client.chat.completions.create(
            model="m", messages=HI, stream=True)]
        out["tools"] = client.chat.completions.create(
            model="m", messages=HI, tools=OAI_TOOLS).model_dump()
        out["tools_stream"] = [c.model_dump() for c in client.chat.completions.create(
            model="m", messages=HI, tools=OAI_TOOLS, stream=True)]
        out["responses"] = client.responses.create(model="m", input="hi").model_dump()
        out["responses_stream"] = [e.model_dump() for e in client.responses.create(
            model="m", input="hi", stream=True)]
    return out


def test_openai_sync_plain_streamed_tools_and_responses(tmp_path: Path) -> None:
    recorded, replayed, path = record_and_replay(
        tmp_path, Script(OPENAI_TURNS, chunk_size=4), openai_agent)
    assert replayed == recorded
    assert recorded["tools"]["choices"][0]["message"]["tool_calls"][0]["function"][
        "name"] == "get_weather"
    assert len(recorded["stream"]) > 3 and recorded["responses_stream"][-1]["type"] == (
        "response.completed")
    events = http_events(path)
    assert len(events) == 6 and all(e.meta["client"] == "httpx2" for e in events)
    assert streamed_chunks_per_event(path)[1] > 3  # the stream kept its chunk boundaries


async def openai_async_agent(url: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="sk-test-0123456789abcdef",
                                  max_retries=0) as client:
        out["plain"] = (await client.chat.completions.create(model="m", messages=HI)
                        ).model_dump()
        out["stream"] = [c.model_dump() async for c in await client.chat.completions.create(
            model="m", messages=HI, stream=True)]
        out["tools"] = (await client.chat.completions.create(
            model="m", messages=HI, tools=OAI_TOOLS)).model_dump()
        out["tools_stream"] = [c.model_dump() async for c in
                               await client.chat.completions.create(
                                   model="m", messages=HI, tools=OAI_TOOLS, stream=True)]
        out["responses"] = (await client.responses.create(model="m", input="hi")).model_dump()
        out["responses_stream"] = [e.model_dump() async for e in await client.responses.create(
            model="m", input="hi", stream=True)]
    return out


async def test_openai_async_plain_streamed_tools_and_responses(tmp_path: Path) -> None:
    recorded, replayed, path = await arecord_and_replay(
        tmp_path, Script(OPENAI_TURNS, chunk_size=4), openai_async_agent)
    assert replayed == recorded
    assert len(recorded["tools_stream"]) > 2
    assert len(http_events(path)) == 6


# -- Anthropic ---------------------------------------------------------------------
def anthropic_agent(url: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with anthropic.Anthropic(base_url=url, api_key="sk-ant-api03-test0123456789",
                             max_retries=0) as client:
        out["plain"] = client.messages.create(model="c", max_tokens=64,
                                              messages=HI).model_dump()
        out["tools"] = client.messages.create(model="c", max_tokens=64, messages=HI,
                                              tools=ANT_TOOLS).model_dump()
        with client.messages.stream(model="c", max_tokens=64, messages=HI) as stream:
            out["stream"] = [e.model_dump() for e in stream]
            out["stream_final"] = stream.get_final_message().model_dump()
        with client.messages.stream(model="c", max_tokens=64, messages=HI,
                                    tools=ANT_TOOLS) as stream:
            out["tools_stream"] = [e.model_dump() for e in stream]
    return out


def test_anthropic_sync_create_stream_and_tool_use(tmp_path: Path) -> None:
    recorded, replayed, path = record_and_replay(
        tmp_path, Script(ANTHROPIC_TURNS, chunk_size=4), anthropic_agent)
    assert replayed == recorded
    assert recorded["tools"]["stop_reason"] == "tool_use"
    assert recorded["stream_final"]["content"][0]["text"] == "streamed claude"
    assert [e.meta["client"] for e in http_events(path)] == ["httpx2"] * 4
    assert min(streamed_chunks_per_event(path)[2:]) > 3


async def anthropic_async_agent(url: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with anthropic.AsyncAnthropic(base_url=url, api_key="sk-ant-api03-test0123456789",
                                        max_retries=0) as client:
        out["plain"] = (await client.messages.create(model="c", max_tokens=64, messages=HI)
                        ).model_dump()
        out["tools"] = (await client.messages.create(model="c", max_tokens=64, messages=HI,
                                                     tools=ANT_TOOLS)).model_dump()
        async with client.messages.stream(model="c", max_tokens=64, messages=HI) as stream:
            out["stream"] = [e.model_dump() async for e in stream]
            out["stream_final"] = (await stream.get_final_message()).model_dump()
        async with client.messages.stream(model="c", max_tokens=64, messages=HI,
                                          tools=ANT_TOOLS) as stream:
            out["tools_stream"] = [e.model_dump() async for e in stream]
    return out


async def test_anthropic_async_create_stream_and_tool_use(tmp_path: Path) -> None:
    recorded, replayed, _ = await arecord_and_replay(
        tmp_path, Script(ANTHROPIC_TURNS, chunk_size=4), anthropic_async_agent)
    assert replayed == recorded
    assert recorded["tools_stream"][-1]["type"] == "message_stop"


# -- retries -----------------------------------------------------------------------
RETRY_TURNS = [
    Turn(text="after two 429s", failures=[Failure.rate_limit(retry_after=0.01)] * 2),
    Turn(text="after a 500", failures=[Failure.server_error(message="boom")]),
    Turn(text="after a dropped connection", failures=[Failure.drop()]),
]


def retrying_agent(url: str) -> list[Any]:
    out: list[Any] = []
    with openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=3) as client:
        for _ in range(3):
            out.append(client.chat.completions.create(model="m", messages=HI).model_dump())
    return out


def test_sdk_retries_replay_the_same_attempts(tmp_path: Path) -> None:
    recorded, replayed, path = record_and_replay(tmp_path, Script(RETRY_TURNS), retrying_agent)
    assert replayed == recorded
    events = http_events(path)
    statuses = [e.response["status"] if isinstance(e.response, dict) else None
                for e in events]
    assert statuses == [429, 429, 200, 500, 200, None, 200]  # None: the dropped attempt
    dropped = events[5]
    assert dropped.error is not None and dropped.error.type == "httpx2.RemoteProtocolError"
    served: list[replay.Event] = []
    with replay.play(path, unused="fail") as run:
        assert run.session is not None
        run.session.listeners.append(served.append)
        assert retrying_agent(_url_of(events[0])) == recorded
    assert [e.seq for e in served if e.channel == "http"] == [e.seq for e in events]


def _url_of(ev: replay.Event) -> str:
    assert isinstance(ev.request, dict)
    url = str(ev.request["url"])
    return url[: url.index("/v1/")]


def test_anthropic_retry_on_429_and_errors_carry_their_request(tmp_path: Path) -> None:
    turns = [Turn(text="ok", failures=[Failure.rate_limit(retry_after=0.01)] * 2),
             Turn(text="Hello there, friend", failures=[Failure.drop(after=2)])]

    def agent(url: str) -> list[Any]:
        out: list[Any] = []
        with anthropic.Anthropic(base_url=url, api_key="k", max_retries=2) as client:
            out.append(client.messages.create(model="c", max_tokens=8,
                                              messages=HI).model_dump())
            seen: list[str] = []
            # anthropic 2.17 wraps the transport's error (2.16 let it through)
            with pytest.raises(anthropic.APIConnectionError) as info:
                with client.messages.stream(model="c", max_tokens=8, messages=HI) as s:
                    seen.extend(e.type for e in s)
            cause = info.value.__cause__
            assert isinstance(cause, httpx2.RemoteProtocolError)
            assert cause.request.url.path == "/v1/messages"  # built with request=
            out.append(seen)
            with client.messages.stream(model="c", max_tokens=8, messages=HI) as s:
                out.append(s.get_final_message().model_dump())
        return out

    recorded, replayed, path = record_and_replay(tmp_path, Script(turns, chunk_size=5), agent)
    assert replayed == recorded
    events = http_events(path)
    assert [e.meta.get("stream") for e in events][3] == "error"
    assert len(events) == 5  # 429, 429, 200, broken stream, retried stream


def test_dropped_stream_replays_the_error_at_the_same_chunk(tmp_path: Path) -> None:
    turn = Turn(text="Hello there, friend", failures=[Failure.drop(after=3)])

    def agent(url: str) -> tuple[list[str], str, str]:
        received: list[str] = []
        with openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client:
            stream = client.chat.completions.create(model="m", messages=HI, stream=True)
            with pytest.raises(openai.APIConnectionError) as info:
                for chunk in stream:
                    received.append(chunk.choices[0].delta.content or "")
            again = client.chat.completions.create(model="m", messages=HI)
        return received, type(info.value.__cause__).__name__, str(
            again.choices[0].message.content)

    recorded, replayed, _ = record_and_replay(tmp_path, Script([turn], chunk_size=5), agent)
    assert recorded == replayed == (["", "Hello", " ther"], "RemoteProtocolError",
                                    "Hello there, friend")


def test_emulator_is_really_gone_during_replay(tmp_path: Path) -> None:
    _, _, path = record_and_replay(
        tmp_path, Script([Turn(text="x")]),
        lambda url: openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
        .chat.completions.create(model="m", messages=HI).model_dump())
    port = int(_url_of(http_events(path)[0]).rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    with replay.play(path, unused="ignore"), pytest.raises(replay.NetworkBlockedError) as info:
        socket.create_connection(("127.0.0.1", port), timeout=1)
    assert (info.value.host, info.value.port) == ("127.0.0.1", port)
