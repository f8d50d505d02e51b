"""``replay show --json``: every model call's usage, cost, answer and finish reasons
(real SDKs against the local emulator), so scripts need not parse bodies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import genai_prices
import openai
import pytest

import replay
from fixtures.emulator import Emulator, ToolCall, Turn, Usage

ROOT = Path(__file__).resolve().parent.parent


def show_json(path: Path) -> dict[str, Any]:
    res = subprocess.run([sys.executable, "-m", "replay._cli", "show", "--json", str(path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def price(model: str, provider: str, **counts: int) -> float:
    return float(genai_prices.calc_price(genai_prices.Usage(**counts), model,
                                         provider_id=provider).total_price)


def test_openai_chat_and_responses_calls(tmp_path: Path,
                                         emulator: Callable[..., Emulator]) -> None:
    emu = emulator(Turn(text="It is sunny.", usage=Usage(120, 30, cached_tokens=100)),
                   Turn(text="Let me look.", tool_calls=[ToolCall("get_weather",
                                                                  {"city": "Oslo"})],
                        usage=Usage(50, 7)),
                   Turn(text="Cut sho", finish_reason="length", usage=Usage(9, 3)),
                   model="gpt-4o-2024-08-06")
    client = openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-test", max_retries=0)
    path = tmp_path / "chat.replay"
    with replay.record(path):
        client.chat.completions.create(model="gpt-4o",
                                       messages=[{"role": "user", "content": "weather?"}])
        for _ in client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "again"}], stream=True,
                stream_options={"include_usage": True}):
            pass
        client.responses.create(model="gpt-4o", input="more", max_output_tokens=3)
        replay.capture(lambda: "not a model call", name="note")()
    doc = show_json(path)
    calls = [e["model_call"] for e in doc["events"] if "model_call" in e]
    assert all("model_call" not in e for e in doc["events"] if e["channel"] != "http")
    plain, streamed, resp = calls
    assert (plain["provider"], plain["api"], plain["model"], plain["served_model"]) == (
        "openai", "chat", "gpt-4o", "gpt-4o-2024-08-06")
    assert plain["answer"] == "It is sunny." and plain["finish_reasons"] == ["stop"]
    assert plain["usage"]["input_tokens"] == 120 and plain["usage"]["cached_tokens"] == 100
    assert plain["cost_usd"] == pytest.approx(price(
        "gpt-4o-2024-08-06", "openai", input_tokens=120, cache_read_tokens=100,
        output_tokens=30))
    assert plain["response_id"].startswith("chatcmpl-")
    assert streamed["streamed"] and streamed["finish_reasons"] == ["tool_calls"]
    assert streamed["answer"] == 'Let me look.\n-> get_weather({"city":"Oslo"})'
    assert (streamed["usage"]["input_tokens"], streamed["usage"]["output_tokens"]) == (50, 7)
    assert resp["api"] == "responses" and resp["answer"] == "Cut sho"
    assert resp["finish_reasons"] == ["max_output_tokens"]
    total = doc["usage"]
    assert (total["calls"], total["input_tokens"], total["output_tokens"]) == (3, 179, 40)
    assert total["unpriced_calls"] == 0
    assert total["cost_usd"] == pytest.approx(sum(c["cost_usd"] for c in calls))


def test_anthropic_calls_and_unknown_price(tmp_path: Path,
                                           emulator: Callable[..., Emulator]) -> None:
    emu = emulator(Turn(text="Hello", usage=Usage(200, 10, cached_tokens=150),
                        model="claude-sonnet-4-20250514"),
                   Turn(tool_calls=[ToolCall("get_weather", {"city": "Rome"})],
                        usage=Usage(60, 12), model="claude-sonnet-4-20250514"),
                   Turn(text="who knows", usage=Usage(5, 5), model="no-such-model-x"))
    client = anthropic.Anthropic(base_url=emu.url, api_key="sk-ant-test", max_retries=0)
    path = tmp_path / "ant.replay"
    with replay.record(path):
        client.messages.create(model="claude-custom", max_tokens=100,
                               messages=[{"role": "user", "content": "hi"}])
        with client.messages.stream(model="claude-custom", max_tokens=100,
                                    messages=[{"role": "user", "content": "go"}]) as s:
            s.get_final_message()
        client.messages.create(model="no-such-model-x", max_tokens=10,
                               messages=[{"role": "user", "content": "?"}])
    plain, streamed, unknown = (e["model_call"] for e in show_json(path)["events"]
                                if "model_call" in e)
    assert plain["answer"] == "Hello" and plain["finish_reasons"] == ["end_turn"]
    assert plain["usage"]["input_tokens"] == 350  # cache reads added in
    assert streamed["finish_reasons"] == ["tool_use"]
    assert streamed["answer"] == '-> get_weather({"city": "Rome"})'
    assert unknown["cost_usd"] is None and unknown["usage"]["output_tokens"] == 5
    total = show_json(path)["usage"]
    assert total["unpriced_calls"] == 1
    assert total["cost_usd"] == pytest.approx(plain["cost_usd"] + streamed["cost_usd"])
