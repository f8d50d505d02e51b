"""``--replay-mode=rewrite`` and the summary's command to record the failing set again.

Real inner pytest runs (pytester): three recorded tests, one changed so it
diverges, one whose cassette is deleted; the summary names both in one
command; that command records exactly those two again (fixtures set up anew,
seeing a recording run) and leaves the third cassette byte for byte alone.
"""

from __future__ import annotations

import shlex
import shutil
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

QUIET = ("-p", "no:textual-snapshot", "-W", "ignore::pytest.PytestAssertRewriteWarning",
         "-o", "asyncio_default_fixture_loop_scope=function")

MODULE = '''
import random

import pytest

import replay


@replay.tool
def get_weather(city: str) -> dict:
    return {"city": city, "temp": round(random.uniform(-5, 35), 1)}


@pytest.fixture
def seen(replay_run):
    with open("fixtures.log", "a") as f:
        f.write(("recording" if replay_run.recording else "replaying") + "\\n")


@pytest.mark.replay
def test_a(seen):
    assert get_weather("Oslo")["city"] == "Oslo"


@pytest.mark.replay
def test_b(seen):
    assert get_weather(CITY)["city"] == CITY


@pytest.mark.replay
def test_c(seen):
    assert get_weather("Rome")["city"] == "Rome"
'''


def write(pytester: pytest.Pytester, city: str) -> None:
    pytester.makepyfile(test_agent=f"CITY = {city!r}\n" + textwrap.dedent(MODULE))
    shutil.rmtree(pytester.path / "__pycache__", ignore_errors=True)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(*QUIET, *args)


def cassette(pytester: pytest.Pytester, name: str) -> Path:
    return pytester.path / "cassettes" / "test_agent" / f"{name}.replay"


def fixture_log(pytester: pytest.Pytester) -> list[str]:
    path = pytester.path / "fixtures.log"
    out = path.read_text().split() if path.exists() else []
    path.unlink(missing_ok=True)
    return out


def test_rewrite_records_again_only_what_is_missing_or_diverged(
        pytester: pytest.Pytester) -> None:
    write(pytester, "Paris")
    run(pytester, "--replay-mode=record").assert_outcomes(passed=3)
    fixture_log(pytester)
    a_before = cassette(pytester, "test_a").read_bytes()
    write(pytester, "Lyon")  # test_b now asks for another city: it diverges
    cassette(pytester, "test_c").unlink()

    failing = run(pytester)
    failing.assert_outcomes(passed=1, failed=2)
    lines = failing.stdout.lines
    at = lines.index("record the failing tests again (the others keep their cassettes):")
    command = lines[at + 1].strip()
    assert command == ("pytest --replay-mode=rewrite test_agent.py::test_b "
                       "test_agent.py::test_c")
    fixture_log(pytester)

    argv = shlex.split(command)
    assert argv[0] == "pytest"
    again = run(pytester, *argv[1:])
    again.assert_outcomes(passed=2)  # only the last run of test_b is reported
    # test_b replayed, diverged, and ran again recording (its fixtures set up anew);
    # test_c had no cassette and was recorded at once.
    assert fixture_log(pytester) == ["replaying", "recording", "recording"]
    again.stdout.fnmatch_lines([
        "cassettes: 2 re-recorded*",
        "recorded again (--replay-mode=rewrite):",
        "  cassettes/test_agent/test_b.replay (was diverged)",
        "  cassettes/test_agent/test_c.replay (was missing)",
    ])
    assert "record the failing tests again" not in again.stdout.str()
    assert cassette(pytester, "test_a").read_bytes() == a_before

    everything = run(pytester, "--replay-mode=rewrite")
    everything.assert_outcomes(passed=3)
    assert fixture_log(pytester) == ["replaying"] * 3  # nothing left to record
    assert cassette(pytester, "test_a").read_bytes() == a_before
    run(pytester).assert_outcomes(passed=3)


def test_rewrite_keeps_a_real_failure(pytester: pytest.Pytester) -> None:
    write(pytester, "Paris")
    run(pytester, "--replay-mode=record", "-k", "test_b").assert_outcomes(passed=1)
    pytester.makepyfile(test_agent="CITY = 'Lyon'\n" + textwrap.dedent(MODULE).replace(
        '    assert get_weather(CITY)["city"] == CITY',
        '    assert get_weather(CITY)["city"] == "Paris"'))
    shutil.rmtree(pytester.path / "__pycache__", ignore_errors=True)
    result = run(pytester, "--replay-mode=rewrite", "-k", "test_b")
    # Diverged, recorded again, and the assertion still fails: the failure is the test's.
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert 'Lyon' == 'Paris'*"])
