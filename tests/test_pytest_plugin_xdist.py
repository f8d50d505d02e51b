"""The pytest plugin under pytest-xdist (a subprocess) and pytest-asyncio."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

AGENT = '''
import random
import time

import pytest

import replay


@replay.tool
def get_weather(city: str) -> dict:
    return {"city": city, "temp": round(random.uniform(-5, 35), 1)}


def agent(city: str) -> str:
    roll = random.random()
    weather = get_weather(city)
    return f"{roll:.6f} {time.time()} {weather}"
'''
QUIET = ("-p", "no:textual-snapshot", "-W", "ignore::pytest.PytestAssertRewriteWarning",
         "-o", "asyncio_default_fixture_loop_scope=function")
"""Options for inner runs (see test_pytest_plugin.py)."""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(*QUIET, *args)

TWENTY = '''
CITIES = ["Paris", "Lyon", "Nice", "Oslo", "Rome", "Kyiv", "Bern", "Graz", "Riga", "Oulu",
          "Pisa", "Bonn", "Gent", "Brno", "Cork", "Lund", "Turku", "Split", "Porto", "Malmo"]


@pytest.mark.replay
@pytest.mark.parametrize("city", CITIES)
def test_city(city, replay_run):
    out = agent(city)
    with open(f"out/{city}.txt", "a") as f:
        f.write(out + "\\n")
    [call] = replay_run.tool_calls
    assert call.args == {"city": city}
'''


def test_twenty_cassettes_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_many=AGENT + TWENTY)
    (pytester.path / "out").mkdir()
    rec = pytester.runpytest_subprocess(*QUIET, "-n", "2", "--replay-mode=record")
    rec.assert_outcomes(passed=20)
    rec.stdout.fnmatch_lines(["cassettes: 20 recorded", "recorded:"])
    cassettes = sorted((pytester.path / "cassettes" / "test_many").iterdir())
    assert len(cassettes) == 20
    assert not any(p.name.endswith(".partial") for p in cassettes)
    stale = pytester.path / "cassettes" / "test_many" / "test_city[Atlantis].replay"
    stale.write_bytes(cassettes[0].read_bytes())

    again = pytester.runpytest_subprocess(*QUIET, "-n", "2")
    again.assert_outcomes(passed=20)
    again.stdout.fnmatch_lines([
        "cassettes: 20 replayed, 1 unused cassette file(s)",
        "cassette files no collected test uses:",
        "  cassettes/test_many/test_city[[]Atlantis[]].replay",
    ])
    text = again.stdout.str()
    assert re.search(r"\[gw0\]|gw0|2 workers", text)
    assert text.count("test_city[Atlantis].replay") == 1  # merged across workers, once
    for out in (pytester.path / "out").iterdir():
        recorded, replayed = out.read_text().splitlines()
        assert recorded == replayed, out.name


ASYNC = '''
import asyncio

import pytest_asyncio

import replay._capture.tasks
from replay.testing import assert_tool_called


@replay.tool
async def lookup(city: str, delay: float) -> dict:
    await asyncio.sleep(delay)
    return {"city": city, "rank": random.randint(1, 100)}


@pytest_asyncio.fixture
async def warm():
    # runs before the test, outside its run: never recorded
    await asyncio.sleep(0)
    return random.random()


@pytest.mark.asyncio
@pytest.mark.replay
async def test_agent(warm, replay_run):
    assert replay._capture.tasks.current_id() == "main"  # the run is active in the test's task
    results = await asyncio.gather(lookup("Paris", 0.03), lookup("Oslo", 0.0),
                                   asyncio.to_thread(agent, "Rome"))
    with open("out.txt", "a") as f:
        f.write(repr(results) + "\\n")
    assert_tool_called(replay_run, "lookup", times=1, city="Paris")
    assert_tool_called(replay_run, "get_weather", city="Rome")
    assert "random" not in replay_run.channels or replay_run.channels["random"] == 1
    tasks = {ev.task for ev in replay_run.events}
    assert len(tasks) == 3 and all(t.startswith("main/") for t in tasks)
'''


def test_async_test_under_pytest_asyncio(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_async=AGENT + textwrap.dedent(ASYNC))
    rec = run(pytester, "--replay-mode=record")
    rec.assert_outcomes(passed=1)
    for _ in range(3):
        run(pytester).assert_outcomes(passed=1)
    lines = (Path(pytester.path) / "out.txt").read_text().splitlines()
    assert len(lines) == 4 and len(set(lines)) == 1
    cassette = pytester.path / "cassettes" / "test_async" / "test_agent.replay"
    assert cassette.exists()
