"""``replay.testing``: views over event logs for users' tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import replay
from fixtures.emulator import Emulator, Script, ToolCall, Turn, Usage
from replay._capture.session import RecordMode
from replay._cassette.events import Event, RecordedError
from replay.testing import LiveRun, RunView, assert_tool_called, assert_tool_not_called


def ev(seq: int, channel: str, request: Any = None, response: Any = None, *,
       parent: int | None = None, error: RecordedError | None = None) -> Event:
    return Event(seq=seq, channel=channel, request=request, response=response, parent=parent,
                 error=error)


LOG = [
    ev(3, "tool:book", {"args": {"flight": "AF1", "price": 120}},
       error=RecordedError("builtins.RuntimeError", "declined")),
    ev(0, "clock", {"fn": "time.time"}, 1.5),
    ev(1, "tool:get_weather", {"args": {"city": "Paris", "unit": "C"}}, {"temp": 12}),
    ev(2, "random", {"fn": "random"}, 0.25, parent=1),
    ev(4, "tool:get_weather", {"args": {"city": "Lyon", "unit": "C"}}, {"temp": 15}),
]


def test_run_view_orders_by_seq_and_groups_by_channel() -> None:
    view = RunView(LOG)
    assert [e.seq for e in view.events] == [0, 1, 2, 3, 4]
    assert len(view) == 5 and list(view) == list(view.events)
    assert view.channels == {"clock": 1, "tool:get_weather": 2, "random": 1, "tool:book": 1}
    assert [e.seq for e in view.on("tool:get_weather")] == [1, 4]
    assert [e.seq for e in view.on("tool:*")] == [1, 3, 4]
    assert view.on("http") == [] and view.model_calls == []
    assert view.usage.total_tokens == 0 and view.usage.calls == 0
    assert "#3 [main] tool:book: book(flight='AF1', price=120) -> raised RuntimeError: declined" \
        in view.describe()
    assert repr(view).startswith("<RunView 5 events")


def test_tool_calls_and_assertions() -> None:
    view = RunView(LOG)
    calls = view.tool_calls
    assert [(c.name, c.seq, c.ok) for c in calls] == [("get_weather", 1, True),
                                                      ("book", 3, False),
                                                      ("get_weather", 4, True)]
    assert calls[0].args == {"city": "Paris", "unit": "C"} and calls[0].result == {"temp": 12}
    assert calls[1].error is not None and calls[1].error.message == "declined"
    assert view.tool("tool:book") == [calls[1]]
    assert assert_tool_called(view, "get_weather", city="Lyon") == [calls[2]]
    assert_tool_called(view, "get_weather", times=2, unit="C")
    assert_tool_not_called(view, "get_weather", city="Oslo")
    assert_tool_not_called(view, "search")
    with pytest.raises(AssertionError) as info:
        assert_tool_called(view, "get_weather", city="Oslo")
    assert str(info.value) == (
        "expected get_weather(city='Oslo') to be called; 0 matching call(s) of 2 call(s) of "
        "get_weather.\ntool calls made:\n"
        "  #1 tool:get_weather(city='Paris', unit='C')\n"
        "  #3 tool:book(flight='AF1', price=120)\n"
        "  #4 tool:get_weather(city='Lyon', unit='C')")
    with pytest.raises(AssertionError, match="to be called 1 time"):
        assert_tool_called(view, "get_weather", times=1)
    with pytest.raises(AssertionError, match="expected no call of book; found:\n  #3"):
        assert_tool_not_called(view, "book")


def test_live_run_keeps_top_level_events_only() -> None:
    live = LiveRun("x.replay", RecordMode.REPLAY)
    assert not live.recording and live.result is None
    for e in LOG:
        live._add(e)
    assert [e.seq for e in live.events] == [0, 1, 3, 4]  # #2 ran inside a tool
    assert LiveRun("x.replay", RecordMode.RECORD).recording


# -- model calls, from cassettes the HTTP layer records against the emulator -------

WEATHER = [Turn(tool_calls=[ToolCall("get_weather", {"city": "Paris"}),
                            ToolCall("get_time", {"tz": "CET"})],
                usage=Usage(30, 8, cached_tokens=10)),
           Turn(text="Take an umbrella.", usage=Usage(50, 5))]
TOOLS_CHAT: Any = [{"type": "function", "function": {"name": n, "parameters": {}}}
                   for n in ("get_weather", "get_time")]
TOOLS_RESP: Any = [{"type": "function", "name": n, "parameters": {}}
                   for n in ("get_weather", "get_time")]
TOOLS_ANTH: Any = [{"name": n, "input_schema": {"type": "object"}}
                   for n in ("get_weather", "get_time")]
USER: Any = [{"role": "user", "content": "Weather?"}]


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(Script(WEATHER)) as emu:
        yield emu


def recorded(path: Path, call: Any) -> RunView:
    with replay.record(path):
        call()
    return RunView.load(path)


def drain(stream: Any) -> None:
    for _ in stream:
        pass


@pytest.mark.parametrize("stream", [False, True])
def test_openai_chat_calls(tmp_path: Path, emulator: Emulator, stream: bool) -> None:
    client = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-x", max_retries=0)

    def agent() -> None:
        for _ in range(2):
            kw: Any = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
            out = client.chat.completions.create(model="gpt-4o-mini", messages=USER,
                                                 tools=TOOLS_CHAT, **kw)
            if stream:
                drain(out)

    view = recorded(tmp_path / "chat.replay", agent)
    first, second = view.model_calls
    assert (first.provider, first.api, first.streamed) == ("openai", "chat", stream)
    assert first.model == "gpt-4o-mini" and first.status == 200
    assert first.url.endswith("/v1/chat/completions")
    assert [(t.name, t.arguments) for t in first.tool_calls] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})]
    assert first.tool_calls[0].id.startswith("call_")
    assert first.tool_names == ["get_weather", "get_time"]
    assert (first.usage.input_tokens, first.usage.output_tokens,
            first.usage.cached_tokens) == (30, 8, 10)
    assert second.text == "Take an umbrella." and second.tool_calls == ()
    assert view.usage.total_tokens == 93 and view.usage.calls == 2
    assert view.usage.cost_usd is not None and view.usage.cost_usd > 0
    assert first.request["messages"] == USER


@pytest.mark.parametrize("stream", [False, True])
def test_openai_responses_calls(tmp_path: Path, emulator: Emulator, stream: bool) -> None:
    client = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-x", max_retries=0)

    def agent() -> None:
        for _ in range(2):
            out = client.responses.create(model="gpt-4.1", input="Weather?", tools=TOOLS_RESP,
                                          stream=stream)
            if stream:
                drain(out)

    first, second = recorded(tmp_path / "resp.replay", agent).model_calls
    assert (first.api, first.streamed, first.served_model) == ("responses", stream, "gpt-4.1")
    assert [(t.name, t.arguments) for t in first.tool_calls] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})]
    assert first.usage.total_tokens == 38 and first.usage.cached_tokens == 10
    assert second.text == "Take an umbrella."


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_messages_calls(tmp_path: Path, emulator: Emulator, stream: bool) -> None:
    client = anthropic.Anthropic(base_url=emulator.url, api_key="sk-ant-x", max_retries=0)

    def agent() -> None:
        for _ in range(2):
            out = client.messages.create(model="claude-haiku-4-5", max_tokens=100,
                                         messages=USER, tools=TOOLS_ANTH, stream=stream)
            if stream:
                drain(out)

    first, second = recorded(tmp_path / "anth.replay", agent).model_calls
    assert (first.provider, first.api, first.streamed) == ("anthropic", "messages", stream)
    assert [(t.name, t.arguments) for t in first.tool_calls] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})]
    assert json.loads(first.tool_calls[0].raw_arguments) == {"city": "Paris"}
    assert first.tool_calls[0].id.startswith("toolu_")
    # normalised as the diff does: Anthropic's cache reads count as input tokens
    assert (first.usage.output_tokens, first.usage.cached_tokens) == (8, 10)
    assert second.text == "Take an umbrella." and second.usage.output_tokens == 5


def test_non_model_http_is_not_a_model_call() -> None:
    get = ev(0, "http", {"method": "GET", "url": "https://example.com/v1/messages"},
             {"status": 200, "headers": []})
    other = ev(1, "http", {"method": "POST", "url": "https://example.com/upload", "body": b"x"},
               {"status": 201, "headers": []})
    assert RunView([get, other]).model_calls == []
