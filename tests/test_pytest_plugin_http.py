"""The pytest plugin with real HTTP: an openai SDK agent, the emulator, network blocking."""

from __future__ import annotations

import shutil
import textwrap

import httpx2  # noqa: F401
import openai  # noqa: F401
import pytest

import fixtures.emulator  # noqa: F401

# Imported here, before pytester snapshots sys.modules: an inner run would otherwise
# import fresh copies whose classes the HTTP layer (imported once) does not know.

pytest_plugins = ["pytester"]

QUIET = ("-p", "no:textual-snapshot", "-W", "ignore::pytest.PytestAssertRewriteWarning",
         "-o", "asyncio_default_fixture_loop_scope=function")
"""Options for inner runs (see test_pytest_plugin.py)."""

MODULE = '''
import json
import socket

import openai
import pytest

import replay
from fixtures.emulator import Emulator, Script, ToolCall, Turn, Usage
from replay.testing import assert_tool_called

QUESTION = "Weather in Paris?"
TOOLS = [{"type": "function", "function": {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


@replay.tool
def get_weather(city: str) -> dict:
    return {"city": city, "forecast": "rain"}


def run_agent(client: openai.OpenAI, question: str) -> str:
    messages = [{"role": "user", "content": question}]
    while True:
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages,
                                               tools=TOOLS)
        msg = reply.choices[0].message
        if not msg.tool_calls:
            return msg.content
        messages.append(msg.model_dump(exclude_none=True))
        for call in msg.tool_calls:
            result = get_weather(**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id,
                             "content": json.dumps(result)})


@pytest.fixture
def client(replay_run):
    if not replay_run.recording:  # replay: no server at all
        yield openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="sk-x", max_retries=0)
        return
    script = Script([
        Turn(tool_calls=[ToolCall("get_weather", {"city": "Paris"})], usage=Usage(30, 8)),
        Turn(text="Take an umbrella.", usage=Usage(50, 5)),
    ])
    with Emulator(script) as emu:
        yield openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-x", max_retries=0)
        with open("emulator.log", "a") as f:
            f.write(f"{emu.request_count}\\n")


@pytest.mark.replay(match_on=["method", "path", "body"])  # the emulator's port changes
def test_agent(client, replay_run):
    assert run_agent(client, QUESTION) == "Take an umbrella."
    assert_tool_called(replay_run, "get_weather", times=1, city="Paris")
    first, second = replay_run.model_calls
    assert first.tool_calls[0].arguments == {"city": "Paris"}
    assert (first.usage.total_tokens, second.usage.total_tokens) == (38, 55)
    assert replay_run.usage.total_tokens == 93


@pytest.fixture
def database():
    """A local service (a listening socket), started outside the recorded run."""
    server = socket.create_server(("127.0.0.1", 0))
    yield server.getsockname()[1]
    server.close()


@pytest.mark.replay
def test_database(database):
    with socket.create_connection(("127.0.0.1", database), timeout=2):
        pass
'''


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(*QUIET, *args)


@pytest.fixture
def module(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_llm=MODULE)
    return pytester


def test_record_with_the_emulator_replay_without_it(module: pytest.Pytester) -> None:
    run(module, "--replay-mode=record", "-k", "agent").assert_outcomes(passed=1)
    assert (module.path / "emulator.log").read_text().split() == ["2"]
    for _ in range(2):
        run(module, "-k", "agent").assert_outcomes(passed=1)
    assert (module.path / "emulator.log").read_text().split() == ["2"]  # never started again


def test_replay_blocks_the_network_except_allowed_hosts(module: pytest.Pytester) -> None:
    run(module, "--replay-mode=record", "-k", "database").assert_outcomes(passed=1)
    blocked = run(module, "-k", "database")
    blocked.assert_outcomes(failed=1)
    blocked.stdout.fnmatch_lines(["*NetworkBlockedError: network blocked during replay: "
                                  "connection to 127.0.0.1:* is not in the cassette*"])
    run(module, "-k", "database", "--replay-allow-host=127.0.0.1").assert_outcomes(passed=1)
    module.makeini("[pytest]\nreplay_allow_hosts = 127.0.0.1\n")
    run(module, "-k", "database").assert_outcomes(passed=1)


def test_changed_prompt_fails_with_the_divergence_report(module: pytest.Pytester) -> None:
    run(module, "--replay-mode=record", "-k", "agent").assert_outcomes(passed=1)
    module.makepyfile(test_llm=MODULE.replace('"Weather in Paris?"', '"Weather in Lyon??"'))
    shutil.rmtree(module.path / "__pycache__", ignore_errors=True)
    result = run(module, "-k", "agent")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "replay diverged at event #1 on channel 'http' (task main): *",
        "  expected #1 http: *'Weather in Paris?'*",
        "  actual   http: *'Weather in Lyon??'*",
        "If the change is intended, record the test again:",
        "  pytest --replay-mode=record test_llm.py::test_agent",
    ])
    text = result.stdout.str()
    failure = text[text.index("FAILURES"):text.index("short test summary")]
    assert textwrap.dedent(failure).count("replay diverged") == 1


LONG = ("You are Ada, the support agent of Parcelly. Be brief and kind. Use the tools: look "
        "the order up, check the refund policy, then refund the order total.")


def test_a_late_change_in_a_long_prompt_is_visible_on_both_sides(
        module: pytest.Pytester) -> None:
    module.makepyfile(test_llm=MODULE.replace('"Weather in Paris?"', repr(LONG)))
    run(module, "--replay-mode=record", "-k", "agent").assert_outcomes(passed=1)
    module.makepyfile(test_llm=MODULE.replace(
        '"Weather in Paris?"', repr(LONG.replace("order total", "order amount"))))
    shutil.rmtree(module.path / "__pycache__", ignore_errors=True)
    result = run(module, "-k", "agent")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "  differences (expected -> actual):",
        "    body.messages[0].content:",
        "      - *then refund the order total.'",
        "      + *then refund the order amount.'",
    ])
    text = result.stdout.str()
    failure = text[text.index("FAILURES"):text.index("short test summary")]
    assert failure.count("replay diverged") == 1
    assert "candidates below" not in failure
    lines = [ln for ln in failure.splitlines() if ln.strip().startswith("#")]
    assert len(set(lines)) == len(lines)
