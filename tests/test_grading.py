"""Graded divergence: planted faults are caught at the first divergent event, graded right.

The fault agent asks a model (the emulator, through the real OpenAI SDK), then
calls two tools, then asks the model again. Each planted fault changes one
thing; the replay must stop at the first event where the run leaves the
recording, with the grade a person would give it.
"""

from __future__ import annotations

import functools
import random
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

import replay
from fixtures.emulator import Emulator, Script, Turn
from replay import Grade


@replay.tool
def tool_a(city: str, nonce: int) -> dict[str, Any]:
    return {"city": city, "a": random.random()}


@replay.tool
def tool_b(city: str, nonce: int) -> dict[str, Any]:
    return {"city": city, "b": random.random()}


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


def _ask(client: openai.OpenAI, prompt: str) -> str:
    resp = client.chat.completions.create(model="emu-1",
                                          messages=[{"role": "user", "content": prompt}])
    return resp.choices[0].message.content or ""


def fault_agent(url: str, fault: str | None = None) -> list[Any]:
    """model -> tool_a -> tool_b -> model; ``fault`` plants one change."""
    out: list[Any] = [str(uuid.uuid4())]
    with openai.OpenAI(base_url=url, api_key="sk-test-grading", max_retries=0,
                       http_client=openai.DefaultHttpxClient(verify=_tls())) as client:
        prompt = "Plan a day in Paris." if fault != "prompt" else "Plan a day in Paris, fast."
        out.append(_ask(client, prompt))
        if fault == "extra":
            out.append(_ask(client, "Double-check that plan."))
        nonce = 7
        if fault == "uncaptured":  # a generator seeded from a clock agent-replay never fakes
            nonce = random.Random(time.perf_counter_ns()).randint(0, 10**9)
        tools = [tool_b, tool_a] if fault == "swap" else [tool_a, tool_b]
        if fault == "missing":
            tools = [tool_b]
        out.extend(fn(city="Paris", nonce=nonce) for fn in tools)
        out.append(_ask(client, f"Summarise: {out[2:]}"))
    return out


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    path = tmp_path_factory.mktemp("grading") / "baseline.replay"
    with Emulator(Script([Turn(text="Sure: museum, lunch, river walk.", repeat=True)])) as emu:
        with replay.record(path):
            fault_agent(emu.openai_base_url)
        yield path, emu.openai_base_url


def _seq(path: Path, channel: str, nth: int = 0) -> int:
    return sorted(e.seq for e in replay.load(path).events if e.channel == channel)[nth]


def _replay_fault(path: Path, url: str, fault: str) -> replay.Divergence:
    with pytest.raises(replay.DivergenceError) as info:
        with replay.play(path, unused="ignore"):
            fault_agent(url, fault)
    return info.value.divergence


def test_the_baseline_replays_clean(baseline: tuple[Path, str]) -> None:
    path, url = baseline
    with replay.play(path, unused="fail") as run:
        fault_agent(url)
    assert run.result is not None and run.result.ok and run.result.grade is None


def test_extra_model_call(baseline: tuple[Path, str]) -> None:
    path, url = baseline
    div = _replay_fault(path, url, "extra")
    assert div.grade is Grade.EXTRA
    assert div.seq == _seq(path, "tool:tool_a")  # the call it was due to make instead
    # The SDK's own idempotency key (a uuid4 the library draws for itself) is no agent
    # input: replay serves or draws it leniently; the extra call is its HTTP request.
    assert div.channel == "http"
    assert div.actual_site is not None and div.actual_site.function == "_ask"
    assert "extra call not in the recording" in div.report()


def test_missing_tool_call(baseline: tuple[Path, str]) -> None:
    path, url = baseline
    div = _replay_fault(path, url, "missing")
    assert div.grade is Grade.MISSING
    assert div.seq == _seq(path, "tool:tool_a")
    assert [e.channel for e in div.skipped] == ["tool:tool_a"]
    assert div.instead is not None and div.instead.channel == "tool:tool_b"
    # the task went on (to the next model call) without coming back for tool_a
    assert div.next_site is not None and div.next_site.function == "_ask"
    report = div.report()
    assert "recorded call(s) skipped" in report and "skipped: #" in report


def test_changed_prompt(baseline: tuple[Path, str]) -> None:
    path, url = baseline
    div = _replay_fault(path, url, "prompt")
    assert div.grade is Grade.CHANGED
    assert div.seq == _seq(path, "http", 0)
    paths = [c.path for c in div.changes]
    assert any(p.startswith("body.messages") and p.endswith("content") for p in paths), paths
    assert "'Plan a day in Paris.' -> 'Plan a day in Paris, fast.'" in div.report()


def test_two_sequential_calls_swapped(baseline: tuple[Path, str]) -> None:
    path, url = baseline
    div = _replay_fault(path, url, "swap")
    assert div.grade is Grade.SWAPPED
    assert div.seq == _seq(path, "tool:tool_a")
    assert div.instead is not None and div.instead.channel == "tool:tool_b"
    assert div.next_channel == "tool:tool_a"
    assert "calls made in another order" in div.report()


def test_value_from_an_uncaptured_generator(baseline: tuple[Path, str]) -> None:
    path, url = baseline
    div = _replay_fault(path, url, "uncaptured")
    assert div.grade is Grade.CHANGED
    assert div.seq == _seq(path, "tool:tool_a")
    assert [c.path for c in div.changes] == ["args.nonce"]
    assert "does not capture" in div.report()


# -- the rule on small runs ------------------------------------------------------------
@replay.tool
def step(name: str) -> str:
    return f"{name}:{random.random()}"


def _run(path: Path, names: list[str], *, unused: str = "ignore") -> replay.ReplayResult:
    with replay.play(path, unused=unused) as run:
        for n in names:
            step(n)
    assert run.result is not None
    return run.result


def _record(path: Path, names: list[str]) -> None:
    with replay.record(path):
        for n in names:
            step(n)


def test_a_skip_at_the_end_of_a_task_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "end.replay"
    _record(path, ["a", "b"])
    with pytest.raises(replay.DivergenceError) as info:
        _run(path, ["b"])
    div = info.value.divergence
    assert div.grade is Grade.MISSING and div.seq == 0 and div.next_channel is None
    assert "the task asked nothing more" in div.report()


def test_a_rotation_is_swapped(tmp_path: Path) -> None:
    path = tmp_path / "rot.replay"
    _record(path, ["a", "b", "c"])
    with pytest.raises(replay.DivergenceError) as info:
        _run(path, ["c", "a", "b"])
    div = info.value.divergence
    assert div.grade is Grade.SWAPPED and div.seq == 0
    assert [e.channel for e in div.skipped] == ["tool:step", "tool:step"]
    assert div.instead is not None and div.instead.request == {"args": {"name": "c"}}


def test_a_skip_followed_by_another_call_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "skipchg.replay"
    _record(path, ["a", "b", "c"])
    with pytest.raises(replay.DivergenceError) as info:
        _run(path, ["b", "z"])  # b skips a; then z, not a: a is missing
    div = info.value.divergence
    assert div.grade is Grade.MISSING and div.seq == 0
    assert div.next_request == {"args": {"name": "z"}}


def test_an_anonymous_read_does_not_skip(tmp_path: Path) -> None:
    """A clock read matching a later one identifies nothing: graded at once."""
    path = tmp_path / "anon.replay"

    def now() -> float:  # one call site, so only the order of the calls differs
        return time.time()

    with replay.record(path):
        now()
        step("a")
        now()
    with pytest.raises(replay.DivergenceError) as info:
        with replay.play(path, unused="ignore"):
            now()
            now()
    div = info.value.divergence
    assert div.grade is Grade.EXTRA and div.channel == "clock" and div.seq == 1


def test_an_extra_call_after_the_last_event(tmp_path: Path) -> None:
    path = tmp_path / "after.replay"
    _record(path, ["a"])
    with pytest.raises(replay.DivergenceError) as info:
        _run(path, ["a", "b"])
    div = info.value.divergence
    assert div.grade is Grade.EXTRA and div.seq is None and div.expected is None
    assert "expected: nothing more from this task" in div.report()


def test_the_result_carries_grade_and_report(tmp_path: Path) -> None:
    path = tmp_path / "res.replay"
    _record(path, ["a", "b"])
    with pytest.raises(replay.DivergenceError):
        with replay.play(path, unused="ignore") as run:
            step("b")
            step("a")
    result = run.result
    assert result is not None and result.grade is Grade.SWAPPED
    assert "1 divergence(s)" in result.report() and "calls made in another order" in (
        result.report())
