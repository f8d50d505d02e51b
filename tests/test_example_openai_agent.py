"""Example: test an OpenAI SDK agent by how it behaves, from a committed cassette.

The agent asks the model, runs the tool the model asks for, and answers. The
test asserts on its behaviour: which tool it called with which arguments, what
the tool returned, what the model asked for, and what the run cost in tokens.

    pytest --replay-mode=record tests/test_example_openai_agent.py   # live, against the
                                                                      # local emulator
    pytest tests/test_example_openai_agent.py                         # replay: no server,
                                                                      # no network

The cassette is ``tests/cassettes/test_example_openai_agent/<test name>.replay``.
See docs/pytest.md.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

import replay
from replay.testing import LiveRun, assert_tool_called, assert_tool_not_called

MODEL = "gpt-4o-mini"
TOOLS: Any = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Tomorrow's forecast for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "book_taxi", "description": "Book a taxi.",
        "parameters": {"type": "object", "properties": {"to": {"type": "string"}}}}},
]


@replay.tool
def get_weather(city: str) -> dict[str, Any]:
    """A stand-in for a live weather API: its answer changes between calls."""
    return {"city": city, "forecast": "rain", "chance": round(random.uniform(0.6, 0.95), 2)}


@replay.tool
def book_taxi(to: str) -> str:
    """Never called in this example (the test checks it)."""
    raise RuntimeError("no taxis in tests")


AGENT_TOOLS: dict[str, Callable[..., Any]] = {"get_weather": get_weather, "book_taxi": book_taxi}


def weather_agent(client: openai.OpenAI, question: str) -> str:
    """Ask the model; run the tools it asks for; return its final answer."""
    messages: list[Any] = [{"role": "system", "content": "You are a concise assistant."},
                           {"role": "user", "content": question}]
    for _ in range(5):
        reply = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
        message = reply.choices[0].message
        if not message.tool_calls:
            return message.content or ""
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            assert call.type == "function"
            tool = AGENT_TOOLS[call.function.name]
            result = tool(**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id,
                             "content": json.dumps(result)})
    raise RuntimeError("the agent did not finish in 5 turns")


@pytest.fixture
def llm(replay_run: LiveRun) -> Iterator[openai.OpenAI]:
    """The model: the local emulator while recording; nothing at all on replay."""
    if not replay_run.recording:
        yield openai.OpenAI(base_url="http://llm.invalid/v1", api_key="unused", max_retries=0)
        return
    from fixtures.emulator import Emulator, Script, ToolCall, Turn, Usage

    script = Script([
        Turn(tool_calls=[ToolCall("get_weather", {"city": "Paris"})],
             usage=Usage(input_tokens=112, output_tokens=17)),
        Turn(text="Yes, take an umbrella: rain is likely in Paris tomorrow.",
             usage=Usage(input_tokens=160, output_tokens=14, cached_tokens=96)),
    ])
    with Emulator(script) as emulator:
        yield openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-emulator",
                            max_retries=0)


# The emulator listens on a new port each time it is recorded: match on the path.
@pytest.mark.replay(match_on=["method", "path", "body"])
def test_agent_checks_the_forecast_before_answering(llm: openai.OpenAI,
                                                    replay_run: LiveRun) -> None:
    answer = weather_agent(llm, "Should I take an umbrella in Paris tomorrow?")

    assert "umbrella" in answer
    # what the agent did
    [weather] = assert_tool_called(replay_run, "get_weather", times=1, city="Paris")
    assert weather.result["forecast"] == "rain"  # type: ignore[index,call-overload]
    assert_tool_not_called(replay_run, "book_taxi")
    # what the model asked for, and what it cost
    ask, final = replay_run.model_calls
    assert ask.tool_names == ["get_weather"] and ask.tool_calls[0].arguments == {"city": "Paris"}
    assert final.text == answer and final.tool_calls == ()
    assert [c.model for c in replay_run.model_calls] == [MODEL, MODEL]
    assert (ask.usage.input_tokens, ask.usage.output_tokens) == (112, 17)
    assert final.usage.cached_tokens == 96
    assert replay_run.usage.total_tokens == 303
    assert replay_run.usage.total_tokens < 1_000  # the token budget of this task
