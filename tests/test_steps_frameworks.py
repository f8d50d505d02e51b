"""Agent steps of framework agents (fixtures/frameworks), recorded with ``replay record``.

pydantic-ai (Chat Completions, parallel tools), openai-agents (Responses, streamed,
a handoff), google-genai's automatic function calling (Gemini) and the anthropic
tool runner: their steps must hold every event once, one step per model call, every
recorded tool linked to the call that asked for it and every result to the call
that read it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import replay
from tests.test_frameworks import ROOT, _replay, _start_emulator

AGENTS = {"pydantic_ai_agent": ("pydantic_ai", "chat"), "openai_agents": ("agents", "responses"),
          "genai_agent": ("google.genai", "generate"),
          "anthropic_tool_runner": ("anthropic", "messages")}


def record(module: str, tmp_path: Path) -> Path:
    script = ROOT / "fixtures" / "frameworks" / "scripts" / f"{module}.json"
    cassette = tmp_path / f"{module}.replay"
    emulator, port = _start_emulator(script)
    try:
        rec = _replay("record", "-o", str(cassette), "--", "python", "-m",
                      f"fixtures.frameworks.{module}", "--base-url", f"http://127.0.0.1:{port}",
                      jitter=0)
    finally:
        emulator.terminate()
        emulator.wait(10)
    assert rec.returncode == 0, rec.stderr[-3000:]
    return cassette


@pytest.mark.parametrize("module", sorted(AGENTS))
def test_framework_runs_group_into_steps(module: str, tmp_path: Path) -> None:
    package, api = AGENTS[module]
    if importlib.util.find_spec(package.split(".")[0]) is None:
        pytest.skip(f"{package} is not installed (the 'frameworks' extra)")
    path = record(module, tmp_path)
    events = sorted(replay.load(path).events, key=lambda e: e.seq)
    found = replay.steps(path)
    assert sorted(e.seq for s in found for e in s.events) == [e.seq for e in events]
    calls = [e for e in events if e.parent is None and replay.model_call(e) is not None]
    model_steps = [s for s in found if s.kind is replay.StepKind.MODEL]
    assert [s.event for s in model_steps] == calls and len(calls) >= 2
    assert {s.call.api for s in model_steps if s.call is not None} == {api}
    assert all(s.index == i for i, s in enumerate(found))
    # Every top-level tool event is linked to a tool call of the step that holds it.
    linked = {t.event.seq for s in found for t in s.tools if t.event is not None}
    tools = [e for e in events if e.channel.startswith("tool:") and e.parent is None]
    assert tools and {e.seq for e in tools} <= linked
    for s in found:
        for t in s.tools:
            if t.event is not None:
                assert t.event in s.events and t.event.channel.startswith("tool:")
            # the result went back to a later call of the same run
            if t.result_seq is not None:
                assert t.result_seq > s.seq
                assert t.result_seq in {c.seq for c in calls}
    answered = [t for s in found for t in s.tools if t.result_seq is not None]
    assert len(answered) >= len(tools)
    # Running totals add up, and every call has its context diff.
    assert found[-1].total.total_tokens == sum(
        s.usage.total_tokens for s in found if s.usage is not None)
    for s in model_steps:
        ctx = replay.context_diff(path, s.seq)
        assert ctx is not None and ctx.conversation == s.conversation
        assert ctx.messages >= 1 and ctx.kept + len(ctx.added) + len(ctx.changed) + len(
            ctx.truncated) == ctx.messages
