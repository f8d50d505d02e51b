"""Tokens, cost, prompts and answers read from recorded model calls (real SDKs, local emulator)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import genai_prices
import openai
import pytest

import replay
from fixtures.emulator import Emulator, ToolCall, Turn, Usage
from replay._analysis.usage import Usage as Tokens
from replay._analysis.usage import model_call, price_of, priced
from replay._analysis.wire import sse_events

WEATHER_TOOL: Any = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object",
                                          "properties": {"city": {"type": "string"}}}}}]


def genai(model: str, provider: str, **counts: int) -> float:
    """genai-prices' own answer for a call (its public API, its bundled data)."""
    return float(genai_prices.calc_price(genai_prices.Usage(**counts), model,
                                         provider_id=provider).total_price)


def calls(path: Path) -> list[replay.Event]:
    return [e for e in sorted(replay.load(path).events, key=lambda e: e.seq)
            if e.channel == "http"]


def test_openai_chat_plain_and_streamed(tmp_path: Path, emulator: Callable[..., Emulator]
                                        ) -> None:
    emu = emulator(Turn(text="It is sunny.", usage=Usage(120, 30, cached_tokens=100)),
                   Turn(text="Streamed answer", tool_calls=[ToolCall("get_weather",
                                                                     {"city": "Oslo"})],
                        usage=Usage(50, 7)), model="gpt-4o-2024-08-06")
    client = openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-test", max_retries=0)
    path = tmp_path / "chat.replay"
    with replay.record(path):
        client.chat.completions.create(model="gpt-4o", messages=[
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "weather?"}],
            tools=WEATHER_TOOL)
        stream = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "again"}], stream=True,
            stream_options={"include_usage": True})
        for _ in stream:
            pass
    plain, streamed = (model_call(e) for e in calls(path))
    assert plain is not None and streamed is not None
    assert (plain.provider, plain.api, plain.model, plain.served_model) == (
        "openai", "chat", "gpt-4o", "gpt-4o-2024-08-06")
    assert plain.system == "Be brief." and plain.messages == (("user", "weather?"),)
    assert plain.system_fingerprint == "fp_emulator"
    assert list(plain.tools) == ["get_weather"] and plain.output == "It is sunny."
    assert plain.usage is not None
    assert (plain.usage.input_tokens, plain.usage.output_tokens, plain.usage.cached_tokens) == (
        120, 30, 100)
    # Priced by genai-prices for the served model: 100 of the 120 input tokens cached.
    assert plain.usage.cost_usd == pytest.approx(genai(
        "gpt-4o-2024-08-06", "openai", input_tokens=120, cache_read_tokens=100,
        output_tokens=30))
    assert plain.usage.cost_usd < genai("gpt-4o-2024-08-06", "openai", input_tokens=120,
                                        output_tokens=30)  # cached tokens cost less
    assert streamed.streamed and streamed.usage is not None
    assert (streamed.usage.input_tokens, streamed.usage.output_tokens) == (50, 7)
    assert streamed.output == 'Streamed answer\n-> get_weather({"city":"Oslo"})'


def test_openai_responses_streamed(tmp_path: Path, emulator: Callable[..., Emulator]) -> None:
    emu = emulator(Turn(text="Hi there", usage=Usage(40, 4)), chunk_size=3)
    client = openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-test", max_retries=0)
    path = tmp_path / "resp.replay"
    with replay.record(path):
        for _ in client.responses.create(model="gpt-4.1", input="hi", instructions="terse",
                                         stream=True):
            pass
    (call,) = (model_call(e) for e in calls(path))
    assert call is not None and call.api == "responses" and call.streamed
    assert call.system == "terse" and call.messages == (("user", "hi"),)
    assert call.output == "Hi there" and call.served_model == "gpt-4.1"
    assert call.usage is not None and (call.usage.input_tokens, call.usage.output_tokens) == (
        40, 4)


def test_anthropic_plain_and_streamed(tmp_path: Path, emulator: Callable[..., Emulator]) -> None:
    emu = emulator(Turn(text="Hello", usage=Usage(200, 10, cached_tokens=150)),
                   Turn(text="Streamed", tool_calls=[ToolCall("get_weather", {"city": "Rome"})],
                        usage=Usage(60, 12)), model="claude-sonnet-4-20250514")
    client = anthropic.Anthropic(base_url=emu.url, api_key="sk-ant-test", max_retries=0)
    path = tmp_path / "ant.replay"
    with replay.record(path):
        client.messages.create(model="claude-custom", max_tokens=100, system="Be kind.",
                               messages=[{"role": "user", "content": "hi"}])
        with client.messages.stream(model="claude-custom", max_tokens=100,
                                    messages=[{"role": "user", "content": "go"}]) as s:
            s.get_final_message()
    plain, streamed = (model_call(e) for e in calls(path))
    assert plain is not None and streamed is not None
    assert (plain.provider, plain.system, plain.served_model) == (
        "anthropic", "Be kind.", "claude-sonnet-4-20250514")
    assert plain.params["max_tokens"] == 100
    # Anthropic reports cache reads beside input_tokens (the emulator sends 200 and
    # 150); normalized, they are added in: 350 prompt tokens of which 150 cached.
    assert plain.usage is not None
    assert (plain.usage.input_tokens, plain.usage.cached_tokens) == (350, 150)
    assert plain.usage.cost_usd == pytest.approx(genai(
        "claude-sonnet-4-20250514", "anthropic", input_tokens=350, cache_read_tokens=150,
        output_tokens=10))
    assert streamed.streamed and streamed.usage is not None
    assert (streamed.usage.input_tokens, streamed.usage.output_tokens) == (60, 12)
    assert streamed.output == 'Streamed\n-> get_weather({"city": "Rome"})'
    assert streamed.usage.cost_usd == pytest.approx(genai(
        "claude-sonnet-4-20250514", "anthropic", input_tokens=60, output_tokens=12))


def test_diff_reports_token_cost_and_prompt_deltas(tmp_path: Path,
                                                    emulator: Callable[..., Emulator]) -> None:
    def run(path: Path, system: str, usage: Usage, text: str) -> None:
        emu = emulator(Turn(text=text, usage=usage), model="gpt-4o-mini")
        client = openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-test", max_retries=0)
        with replay.record(path):
            client.chat.completions.create(model="gpt-4o-mini", messages=[
                {"role": "system", "content": system}, {"role": "user", "content": "plan"}])

    run(tmp_path / "a.replay", "Plan the trip.\nBe brief.", Usage(100, 20), "Go to Rome.")
    run(tmp_path / "b.replay", "Plan the trip.\nBe thorough.", Usage(110, 80), "Go to Oslo.")
    d = replay.diff(tmp_path / "a.replay", tmp_path / "b.replay")
    http = [p for p in d.differing if p.channel == "http"]
    assert len(http) == 1
    pair = http[0]
    assert "-Be brief.\n+Be thorough.\n" in pair.prompt_diff
    assert "-Go to Rome.\n+Go to Oslo.\n" in pair.output_diff
    assert pair.left_usage is not None and pair.right_usage is not None
    assert (pair.left_usage.total_tokens, pair.right_usage.total_tokens) == (120, 190)
    assert (d.left_usage.calls, d.right_usage.calls) == (1, 1)
    doc = d.to_json()
    assert doc["usage_delta"]["total_tokens"] == 70
    assert doc["usage_delta"]["cost_usd"] == pytest.approx(
        genai("gpt-4o-mini", "openai", input_tokens=110, output_tokens=80)
        - genai("gpt-4o-mini", "openai", input_tokens=100, output_tokens=20), abs=1e-8)
    text = d.report()
    assert "tokens: 120 -> 190 (+70)" in text and "+Be thorough." in text
    # Emulator ports, dates, request ids and the SDK's uuids differ between the two
    # runs: noise. Only the model call is reported.
    assert {p.channel for p in d.differing} == {"http"}


def test_prices_and_sse_parsing() -> None:
    m = 1_000_000
    assert price_of("gpt-4o-mini-2024-07-18", provider="openai") == pytest.approx((
        genai("gpt-4o-mini-2024-07-18", "openai", input_tokens=m),
        genai("gpt-4o-mini-2024-07-18", "openai", input_tokens=m, cache_read_tokens=m),
        genai("gpt-4o-mini-2024-07-18", "openai", output_tokens=m)))
    assert price_of("claude-3-5-haiku-20241022") == pytest.approx((
        genai("claude-3-5-haiku-20241022", "anthropic", input_tokens=m),
        genai("claude-3-5-haiku-20241022", "anthropic", input_tokens=m, cache_read_tokens=m),
        genai("claude-3-5-haiku-20241022", "anthropic", output_tokens=m)))
    assert price_of("my-local-model") is None
    assert price_of("x", {"x": (1.0, 0.5, 2.0)}) == (1.0, 0.5, 2.0)
    events = sse_events(b"event: a\ndata: {\"x\": 1}\n\ndata: [DONE]\n\n: comment\n\n"
                        b"data: not json\n\n")
    assert events == [("a", {"x": 1}), (None, "not json")]


def test_prices_override_cache_writes_and_no_update() -> None:
    tokens = Tokens(1000, 100, cached_tokens=400, cache_write_tokens=200)
    # A private contract: the override wins for the models it names...
    own = priced(tokens, "gpt-4o-mini", {"gpt-4o": (1.0, 0.5, 2.0)}, "openai")
    assert own.cost_usd == pytest.approx((600 * 1.0 + 400 * 0.5 + 100 * 2.0) / 1e6)
    # ... and genai-prices answers for the others.
    other = priced(tokens, "claude-sonnet-4-20250514", {"gpt-4o": (1.0, 0.5, 2.0)},
                   "anthropic")
    assert other.cost_usd == pytest.approx(genai(
        "claude-sonnet-4-20250514", "anthropic", input_tokens=1000, cache_read_tokens=400,
        cache_write_tokens=200, output_tokens=100))
    assert priced(tokens, "my-local-model").cost_usd is None
    # A price snapshot installed by genai-prices' updater (which downloads) is not used:
    # costs come from the data bundled with the installed package.
    from genai_prices import data_snapshot
    before = priced(tokens, "gpt-4o-mini", provider="openai").cost_usd
    data_snapshot.set_custom_snapshot(data_snapshot.DataSnapshot(providers=[],
                                                                 from_auto_update=True))
    try:
        assert priced(tokens, "gpt-4o-mini", provider="openai").cost_usd == before
    finally:
        data_snapshot.set_custom_snapshot(None)


def test_diff_caches_never_answer_for_another_event_with_a_reused_id(
        tmp_path: Path, emulator: Callable[..., Emulator]) -> None:
    """A packed cassette's events are decoded on demand, so an Event freed during a
    diff leaves its id to the next one made: the per-diff caches keyed by id must
    not hand the next event the freed one's model call (the run totals of
    ``replay.diff`` came out equal, a usage delta of 0, in one CI run)."""
    from replay._analysis.compare import Comparer
    from replay._analysis.diff import _Ctx

    emu = emulator(Turn(text="a", usage=Usage(10, 1)), Turn(text="b", usage=Usage(20, 2)),
                   Turn(text="c", usage=Usage(30, 3)), model="gpt-4o-mini")
    client = openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-test", max_retries=0)
    path = tmp_path / "three.replay"
    with replay.record(path):
        for q in "xyz":
            client.chat.completions.create(model="gpt-4o-mini",
                                           messages=[{"role": "user", "content": q}])
    maps = [ev.to_map() for ev in replay.load(path).events if ev.channel == "http"]
    ids = []
    for i in range(60):  # a fresh Event each time, the last one freed: ids get reused
        ev = replay.Event.from_map(maps[i % 3])
        ids.append(id(ev))
        del ev
    assert len(set(ids)) < len(ids)  # the hazard is real here
    ctx = _Ctx((), None, Comparer([], []), False)
    for i in range(60):
        ev = replay.Event.from_map(maps[i % 3])
        call = ctx.call(ev)
        assert call is not None and call.usage.total_tokens == (11, 22, 33)[i % 3]
        assert ctx.request_key(ev) == ctx.request_key(replay.Event.from_map(maps[i % 3]))
        del ev
    d = replay.diff(path, path)
    assert d.left_usage.total_tokens == d.right_usage.total_tokens == 66
