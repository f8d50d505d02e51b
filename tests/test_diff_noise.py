"""Noise-aware comparison: ids, clock, random and uuid values are noise; the first
divergence is the first input or behaviour change (issue 15, item 1).

The provider tests record the real SDKs against two emulators that differ only in
what any two live runs differ in (the seed behind every id, ``created``, the
system fingerprint), then against one whose answer changed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import replay
from replay._analysis.compare import Comparer, Kind, classify, path_keys
from replay._cassette.structdiff import Change

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fixtures.emulator import Emulator, Script, ToolCall, Turn  # noqa: E402

REPLAY = [sys.executable, "-m", "replay._cli"]
WEATHER = ToolCall("get_weather", {"city": "Paris"})
OAI_TOOL: Any = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}
RESP_TOOL: Any = {"type": "function", "name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}
ANT_TOOL: Any = {"name": "get_weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}}}


@replay.tool
def get_weather(city: str) -> dict[str, Any]:
    return {"city": city, "sky": "light rain"}


def _chat(url: str, stream: bool) -> None:
    with openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client:
        msgs: Any = [{"role": "user", "content": "umbrella in Paris?"}]
        first = client.chat.completions.create(model="gpt-4o-mini", messages=msgs,
                                               tools=[OAI_TOOL])
        call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
        msgs += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id,
                  "content": json.dumps(get_weather(**json.loads(call.function.arguments)))}]
        if stream:
            for _ in client.chat.completions.create(
                    model="gpt-4o-mini", messages=msgs, tools=[OAI_TOOL], stream=True,
                    stream_options={"include_usage": True}):
                pass
        else:
            client.chat.completions.create(model="gpt-4o-mini", messages=msgs, tools=[OAI_TOOL])


def _responses(url: str) -> None:
    with openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client:
        ask: Any = [{"role": "user", "content": "umbrella in Paris?"}]
        first = client.responses.create(model="gpt-4o-mini", input=ask, tools=[RESP_TOOL])
        call = next(o for o in first.output if o.type == "function_call")
        out = get_weather(**json.loads(call.arguments))  # type: ignore[union-attr]
        items: Any = [*ask, call.model_dump(exclude_none=True),
                      {"type": "function_call_output", "call_id": call.call_id,  # type: ignore[union-attr]
                       "output": json.dumps(out)}]
        client.responses.create(model="gpt-4o-mini", input=items, tools=[RESP_TOOL])


def _anthropic(url: str) -> None:
    with anthropic.Anthropic(base_url=url, api_key="k", max_retries=0) as client:
        msgs: Any = [{"role": "user", "content": "umbrella in Paris?"}]
        first = client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=msgs,
                                       tools=[ANT_TOOL])
        use = next(b for b in first.content if b.type == "tool_use")
        msgs += [{"role": "assistant", "content": [b.model_dump() for b in first.content]},
                 {"role": "user", "content": [{
                     "type": "tool_result", "tool_use_id": use.id,  # type: ignore[union-attr]
                     "content": json.dumps(get_weather(**use.input))}]}]  # type: ignore[union-attr]
        client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=msgs,
                               tools=[ANT_TOOL])


def _gemini(url: str) -> None:
    genai = pytest.importorskip("google.genai")
    from google.genai import types
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(
        name="get_weather", parameters=types.Schema(
            type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}))])
    config = types.GenerateContentConfig(
        tools=[tool], automatic_function_calling=types.AutomaticFunctionCallingConfig(
            disable=True))
    ask = types.Content(role="user", parts=[types.Part(text="umbrella in Paris?")])
    options = types.HttpOptions(base_url=url)
    with genai.Client(api_key="k", http_options=options) as client:
        first = client.models.generate_content(model="gemini-2.5-flash", contents=[ask],
                                               config=config)
        call = (first.function_calls or [])[0]
        answer = types.Content(role="user", parts=[types.Part(
            function_response=types.FunctionResponse(
                id=call.id, name=call.name, response=get_weather(**(call.args or {}))))])
        model_turn = first.candidates[0].content  # type: ignore[index]
        client.models.generate_content(model="gemini-2.5-flash",
                                       contents=[ask, model_turn, answer], config=config)


AGENTS: dict[str, Callable[[str], None]] = {
    "openai-chat": lambda url: _chat(url, stream=False),
    "openai-chat-stream": lambda url: _chat(url, stream=True),
    "openai-responses": _responses,
    "anthropic": _anthropic,
    "gemini": _gemini,
}


def _record(path: Path, agent: Callable[[str], None], final: str, **script: Any) -> Path:
    turns = [Turn(text="Let me check.", tool_calls=[WEATHER]), Turn(text=final)]
    with Emulator(Script(turns, **script)) as emu:
        agent(emu.url)  # warm the SDK's lazy imports outside the recording
    with Emulator(Script(turns, **script)) as emu, replay.record(path):
        agent(emu.url)
    return path


@pytest.mark.parametrize("provider", sorted(AGENTS))
def test_two_live_runs_of_a_provider_differ_only_in_noise(tmp_path: Path, provider: str) -> None:
    agent = AGENTS[provider]
    a = _record(tmp_path / "a.replay", agent, "Take an umbrella.", seed=1, created=1_700_000_000,
                system_fingerprint="fp_a")
    b = _record(tmp_path / "b.replay", agent, "Take an umbrella.", seed=2, created=1_700_000_900,
                system_fingerprint="fp_b")
    d = replay.diff(a, b)
    http = [p for p in d.pairs if p.channel == "http"]
    assert len(http) == 2
    assert d.same, d.report()
    assert any(p.is_noise for p in http), d.report()  # ids, created... did differ
    assert all(p.kind in (Kind.SAME, Kind.NOISE) for p in d.pairs)
    assert d.first_divergence is None and d.to_json()["first_divergence"] is None
    loud = replay.diff(a, b, include_noise=True)
    assert not loud.same and loud.first_divergence is not None
    assert loud.first_divergence.kind is Kind.NOISE

    c = _record(tmp_path / "c.replay", agent, "Sunglasses.", seed=2, created=1_700_000_900,
                system_fingerprint="fp_b")
    d = replay.diff(a, c)
    first = d.first_divergence
    assert first is not None and first.channel == "http", d.report()
    assert first.kind is Kind.INPUT and first.left is not None
    assert first.left.seq == http[1].left_seq
    assert [c.path.split(".")[0] for c in first.significant()] == ["response"] * len(
        first.significant())


# -- the demo --------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run([*REPLAY, "demo", "--dir", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return out


def _bad_good(runs: Path) -> tuple[Path, Path]:
    """(a run that refunded 4990.0, one that refunded 49.9)."""
    def total(p: Path) -> float:
        return next(e.response["total"] for e in replay.load(p).events  # type: ignore[index]
                    if e.channel == "tool:lookup_order")
    paths = sorted(runs.glob("run-*.replay"))
    return (next(p for p in paths if total(p) == 4990.0),
            next(p for p in paths if total(p) == 49.9))


def test_demo_diff_lands_on_lookup_order(demo_runs: Path) -> None:
    bad, good = _bad_good(demo_runs)
    proc = subprocess.run([*REPLAY, "diff", str(bad), str(good)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    first = next(line for line in lines if line.startswith("first divergence:"))
    assert "#4" in first and "tool:lookup_order" in first and "(input)" in first
    after = lines[lines.index(first):]
    assert any("response.total: 4990.0 -> 49.9" in line for line in after[:6])
    noise = [line for line in lines if line.startswith("noise:")]
    assert len(noise) == 1 and "uuid" in noise[0] and "clock" in noise[0]
    assert not any(" uuid " in line and "~" in line for line in lines)  # noise rows not listed

    doc = json.loads(subprocess.run([*REPLAY, "diff", str(bad), str(good), "--json"],
                                    capture_output=True, text=True, timeout=60).stdout)
    assert doc["schema"] == "agent-replay/diff/2"
    fd = doc["first_divergence"]
    assert (fd["left_seq"], fd["channel"], fd["kind"]) == (4, "tool:lookup_order", "input")
    total = next(c for c in fd["changes"] if c["path"] == "response.total")
    assert (total["old"], total["new"], total["noise"]) == (4990.0, 49.9, False)
    assert doc["noise"]["pairs"] >= 6 and doc["noise"]["channels"]["uuid"] >= 4
    assert doc["noise"]["included"] is False
    assert all(p["kind"] != "noise" for p in doc["pairs"])
    assert doc["kinds"]["noise"] == doc["noise"]["pairs"]


def test_demo_flags(demo_runs: Path) -> None:
    bad, good = _bad_good(demo_runs)
    loud = replay.diff(bad, good, include_noise=True)
    assert loud.first_divergence is not None and loud.first_divergence.kind is Kind.NOISE
    assert any(p.channel == "uuid" for p in loud.differing)
    doc = json.loads(subprocess.run([*REPLAY, "diff", str(bad), str(good), "--json",
                                     "--include-noise"], capture_output=True, text=True,
                                    timeout=60).stdout)
    assert doc["noise"]["included"] is True and doc["first_divergence"]["kind"] == "noise"
    assert any(p["kind"] == "noise" for p in doc["pairs"])
    # Without the tools, and the model calls that quote them, only noise is left.
    quiet = replay.diff(bad, good, ignore_channels=["tool:*", "http"])
    assert quiet.same and quiet.noise
    proc = subprocess.run([*REPLAY, "diff", str(bad), str(good), "--ignore-channel", "tool:*",
                           "--ignore-channel", "http"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "same apart from noise" in proc.stdout
    # --ignore PATH drops the changes under it: the first divergence moves on.
    moved = replay.diff(bad, good, ignore=["response.total", "response.replica"])
    assert moved.first_divergence is not None
    assert moved.first_divergence.channel != "tool:lookup_order"


# -- the rules ----------------------------------------------------------------------
def _ev(seq: int, channel: str, request: Any, response: Any, **kw: Any) -> replay.Event:
    return replay.Event(seq=seq, channel=channel, request=request, response=response, **kw)


def test_rules_on_hand_made_events() -> None:
    clock_l = _ev(0, "clock", {"fn": "time.time"}, 1796292295.558605)
    clock_r = _ev(0, "clock", {"fn": "time.time"}, 1796292296.043048)
    uuid_l = _ev(1, "uuid", {"fn": "uuid4"}, "1442f0f9-d3ff-47b3-9db2-1342f9218d65")
    uuid_r = _ev(1, "uuid", {"fn": "uuid4"}, "40f9b419-0000-4000-8000-000000000000")
    cmp = Comparer([clock_l, uuid_l], [clock_r, uuid_r])
    tool_l = _ev(2, "tool:refund", {"args": {"amount": 1}},
                 {"id": "R-1442f0f9", "at": 1796292295.558605, "ok": True})
    tool_r = _ev(2, "tool:refund", {"args": {"amount": 1}},
                 {"id": "R-40f9b419", "at": 1796292296.043048, "ok": False})
    assert cmp.change_kind(Change("response.id", "changed", "R-1442f0f9", "R-40f9b419"),
                           tool_l, tool_r) is Kind.NOISE
    assert cmp.change_kind(Change("response.at", "changed", 1796292295.558605,
                                  1796292296.043048), tool_l, tool_r) is Kind.NOISE
    assert cmp.change_kind(Change("response.ok", "changed", True, False),
                           tool_l, tool_r) is Kind.INPUT
    assert cmp.change_kind(Change("request.args.amount", "changed", 1, 2),
                           tool_l, tool_r) is Kind.BEHAVIOUR
    # "id" is noise in a model API's wire format, not in a tool's answer.
    assert cmp.change_kind(Change("response.id", "changed", "A-1", "A-2"),
                           tool_l, tool_r) is Kind.INPUT
    lib = _ev(3, "random", {"fn": "random"}, 0.5, meta={"lib": "httpx"})
    assert cmp.pair_kind(lib, None, ())[0] is Kind.NOISE
    assert cmp.pair_kind(None, tool_r, ())[0] is Kind.BEHAVIOUR
    assert cmp.pair_kind(tool_l, tool_r, (), moved=True)[0] is Kind.BEHAVIOUR
    assert path_keys("response.body.choices[0].message.tool_calls[1].id")[-1] == "id"
    d = replay.diff([clock_l, uuid_l, tool_l], [clock_r, uuid_r, tool_r])
    assert d.first_divergence is not None and classify(d.first_divergence) is Kind.INPUT
    assert [p.kind for p in d.pairs] == [Kind.NOISE, Kind.NOISE, Kind.INPUT]


async def test_tui_title_and_flags_use_the_same_model(demo_runs: Path) -> None:
    from tui.app import ReplayApp
    bad, good = _bad_good(demo_runs)
    app = ReplayApp(bad, good)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert "first divergence at #4" in app.title_text
        assert app.run_diff is not None
        flagged = [p.left.seq for p in app.run_diff.pairs if p.differs and p.left is not None]
        assert flagged[0] == 4 and len(flagged) < 8  # not the 16 uuid/clock rows
