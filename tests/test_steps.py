"""Agent steps from recorded runs: the real SDKs of all four wire formats at the emulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import replay
from fixtures.emulator import Emulator, ToolCall, Turn, Usage
from tests._steps_agents import AGENTS, QUESTION, SYSTEM

APIS = sorted(AGENTS)


def record_agent(tmp_path: Path, emulator: Callable[..., Emulator], api: str, stream: bool,
                 *turns: Turn, name: str = "run") -> Path:
    """Record ``AGENTS[api]`` answering from ``turns``."""
    emu = emulator(*turns)
    path = tmp_path / f"{name}.replay"
    with replay.record(path):
        AGENTS[api](emu.url, stream)
    return path


PARALLEL = (
    Turn(text="Checking both.", tool_calls=[ToolCall("steps_weather", {"city": "Paris"}),
                                            ToolCall("steps_weather", {"city": "Oslo"})],
         usage=Usage(100, 20)),
    Turn(text="Take one in Paris, not in Oslo: it snows there.", usage=Usage(180, 12)),
)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("api", APIS)
def test_parallel_tool_calls_form_one_step(tmp_path: Path, emulator: Callable[..., Emulator],
                                           api: str, stream: bool) -> None:
    path = record_agent(tmp_path, emulator, api, stream, *PARALLEL)
    events = sorted(replay.load(path).events, key=lambda e: e.seq)
    got = replay.steps(path)
    assert [s.kind for s in got] == [replay.StepKind.MODEL, replay.StepKind.MODEL]
    first, last = got
    assert first.call is not None and first.call.api == api
    assert first.call.streamed is stream
    # The answer asked for two tools; both ran (each in its own task), each linked by its
    # call id to the model call that read its result.
    assert [(t.call.name, t.call.parsed()) for t in first.tools] == [
        ("steps_weather", {"city": "Paris"}), ("steps_weather", {"city": "Oslo"})]
    ran = [t.event for t in first.tools]
    assert all(ev is not None and ev.channel == "tool:steps_weather" for ev in ran)
    assert [ev.request for ev in ran if ev is not None] == [
        {"args": {"city": "Paris"}}, {"args": {"city": "Oslo"}}]
    assert all(ev is not None and ev.task != first.task for ev in ran)  # asyncio.gather
    assert [t.result_seq for t in first.tools] == [last.seq, last.seq]
    if api != "generate":
        assert all(t.call.id for t in first.tools)
    # The clock read inside each tool is nested in it, and in the same step.
    for ev in ran:
        assert ev is not None
        [nested] = first.children(ev.seq)
        assert nested.channel == "clock" and nested in first.events
    # Every event is in exactly one step, in seq order.
    assert [e.seq for s in got for e in s.events] == [e.seq for e in events]
    assert last.tools == () and last.name.endswith(": answer")
    assert first.name.endswith("-> steps_weather, steps_weather")
    # Tokens, cost and running totals.
    assert first.usage is not None and last.usage is not None
    assert (first.usage.input_tokens, first.usage.output_tokens) == (100, 20)
    assert (last.usage.input_tokens, last.usage.output_tokens) == (180, 12)
    assert last.total.total_tokens == 312 and last.total.calls == 2
    assert first.usage.cost_usd is not None and first.usage.cost_usd > 0
    assert last.total.cost_usd == pytest.approx(first.usage.cost_usd + last.usage.cost_usd)
    assert first.start_ns <= first.end_ns <= last.start_ns <= last.end_ns
    assert first.conversation == last.conversation == 1


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("api", APIS)
def test_context_diff_says_what_the_model_read(tmp_path: Path,
                                               emulator: Callable[..., Emulator], api: str,
                                               stream: bool) -> None:
    path = record_agent(tmp_path, emulator, api, stream, *PARALLEL)
    first, last = replay.steps(path)
    assert first.event is not None and last.event is not None
    start = replay.context_diff(path, first.seq)
    assert start is not None and start.previous_seq is None and start.conversation == 1
    assert [(c.status.value, c.role, c.text) for c in start.changes] == [
        ("added", "system", SYSTEM), ("added", "user", QUESTION)]
    assert start.tokens_delta == 100
    ctx = replay.context_diff(path, last.seq)
    assert ctx is not None and ctx.previous_seq == first.seq and ctx.conversation == 1
    assert ctx.kept == 2 and not ctx.changed and not ctx.removed and not ctx.truncated
    added = [(c.role, c.text) for c in ctx.added]
    # The model's answer (its tool calls) and both tool results came back.
    assert [role for role, _ in added][-1] == ("user" if api in ("messages", "generate")
                                               else "tool")
    text = "\n".join(t for _, t in added)
    assert text.count("steps_weather") >= 2 and "rain" in text and "snow" in text
    assert ctx.chars_delta == sum(len(t) for _, t in added)
    assert (ctx.input_tokens, ctx.previous_input_tokens, ctx.tokens_delta) == (180, 100, 80)
    assert replay.context_diff(path, first.seq + 1) is None or first.seq + 1 == last.seq


def test_events_before_the_first_call_and_runs_without_calls(tmp_path: Path) -> None:
    import time
    import uuid
    path = tmp_path / "plain.replay"
    with replay.record(path):
        uuid.uuid4()
        time.time()
    [only] = replay.steps(path)
    assert only.kind is replay.StepKind.SETUP and only.event is None and only.call is None
    assert [e.channel for e in only.events] == ["uuid", "clock"]
    assert only.usage is None and only.total.total_tokens == 0 and only.name == "setup"
    assert replay.steps([]) == []
    with pytest.raises(TypeError):
        replay.steps([1, 2])  # type: ignore[list-item]


def test_tool_results_link_across_a_multi_step_run(tmp_path: Path,
                                                   emulator: Callable[..., Emulator]) -> None:
    path = record_agent(
        tmp_path, emulator, "chat", True,
        Turn(tool_calls=[ToolCall("steps_weather", {"city": "Rome"})]),
        Turn(tool_calls=[ToolCall("steps_alerts", {"city": "Rome"})]),
        Turn(text="Sunny, no alerts."))
    got = replay.steps(path)
    assert [s.name for s in got] == ["gpt-4o-mini -> steps_weather",
                                     "gpt-4o-mini -> steps_alerts", "gpt-4o-mini: answer"]
    assert [t.result_seq for s in got for t in s.tools] == [got[1].seq, got[2].seq]
    assert [s.index for s in got] == [0, 1, 2]
    ctx = replay.context_diff(path, got[2].seq)
    assert ctx is not None and ctx.previous_seq == got[1].seq
    assert [c.role for c in ctx.added] == ["assistant", "tool"]
    assert json.loads(ctx.added[1].text)["alerts"] == []


def test_responses_previous_response_id_carries_the_context(
        tmp_path: Path, emulator: Callable[..., Emulator]) -> None:
    import openai
    emu = emulator(Turn(tool_calls=[ToolCall("steps_weather", {"city": "Rome"})]),
                   Turn(text="Sunny."))
    client = openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-test", max_retries=0)
    tools: Any = [{"type": "function", "name": "steps_weather", "parameters": {}}]
    path = tmp_path / "chained.replay"
    with replay.record(path):
        first = client.responses.create(model="gpt-4.1", input=QUESTION, tools=tools,
                                        instructions=SYSTEM)
        [call] = [o for o in first.output if o.type == "function_call"]
        client.responses.create(model="gpt-4.1", previous_response_id=first.id, tools=tools,
                                instructions=SYSTEM, input=[{
                                    "type": "function_call_output", "call_id": call.call_id,
                                    "output": '{"forecast": "sun"}'}])
    one, two = replay.steps(path)
    assert one.call is not None and one.call.response_id == first.id
    assert one.tools[0].result_seq == two.seq and two.conversation == one.conversation
    ctx = replay.context_diff(path, two.seq)
    # The second call sent only the tool result; it read the first call's context and answer.
    assert ctx is not None and ctx.previous_seq == one.seq and ctx.kept == 2
    assert [(c.role, c.text) for c in ctx.added] == [
        ("assistant", '-> steps_weather({"city":"Rome"})'), ("tool", '{"forecast": "sun"}')]
