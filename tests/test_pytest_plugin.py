"""The pytest plugin, driven through pytester: marker, fixture, modes, failures, summary."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

import replay

pytest_plugins = ["pytester"]

AGENT = '''
import random
import time

import pytest

import replay


@replay.tool
def get_weather(city: str, unit: str = "C") -> dict:
    return {"city": city, "temp": round(random.uniform(-5, 35), 1), "unit": unit}


def agent(city: str) -> str:
    roll = random.random()
    weather = get_weather(city)
    return f"{roll:.6f} {time.time()} {weather}"
'''


def write(pytester: pytest.Pytester, body: str, name: str = "test_agent") -> Path:
    """A test module: the sample agent, then ``body``."""
    path = pytester.makepyfile(**{name: AGENT + textwrap.dedent(body)})
    shutil.rmtree(pytester.path / "__pycache__", ignore_errors=True)  # edits within 1 s
    return path


ONE_TEST = '''
@pytest.mark.replay
def test_weather(replay_run):
    out = agent("Paris")
    with open("out.txt", "a") as f:
        f.write(out + "\\n")
    assert replay_run.channels == {"random": 1, "tool:get_weather": 1, "clock": 1}
'''


QUIET = ("-p", "no:textual-snapshot", "-W", "ignore::pytest.PytestAssertRewriteWarning",
         "-o", "asyncio_default_fixture_loop_scope=function")
"""Options for inner runs: no snapshot plugin, no warnings about the outer session."""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in this process (textual-snapshot's session-wide temp dir cannot nest)."""
    return pytester.runpytest_inprocess(*QUIET, *args)


def outputs(pytester: pytest.Pytester) -> list[str]:
    return (pytester.path / "out.txt").read_text().splitlines()


def test_missing_cassette_fails_with_the_record_command(pytester: pytest.Pytester) -> None:
    write(pytester, ONE_TEST)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "no cassette for this test at cassettes/test_agent/test_weather.replay; record it with:",
        "  pytest --replay-mode=record test_agent.py::test_weather",
        "*agent-replay*",
        "cassettes: 1 missing",
    ])
    assert not (pytester.path / "out.txt").exists()  # the body never ran


def test_record_then_replay_gives_the_recorded_run(pytester: pytest.Pytester) -> None:
    write(pytester, ONE_TEST)
    rec = run(pytester, "--replay-mode=record")
    rec.assert_outcomes(passed=1)
    rec.stdout.fnmatch_lines(["cassettes: 1 recorded", "recorded:",
                              "  cassettes/test_agent/test_weather.replay"])
    cassette = pytester.path / "cassettes" / "test_agent" / "test_weather.replay"
    assert cassette.exists()
    for _ in range(2):
        run(pytester).assert_outcomes(passed=1)
    live = run(pytester, "--replay-mode=record")
    live.assert_outcomes(passed=1)
    first, replay_1, replay_2, rerecorded = outputs(pytester)
    assert first == replay_1 == replay_2
    assert rerecorded != first
    header = replay.read_header(cassette)
    assert header.meta["pytest.nodeid"] == "test_agent.py::test_weather"


def test_changed_code_fails_with_the_divergence_report(pytester: pytest.Pytester) -> None:
    write(pytester, ONE_TEST)
    run(pytester, "--replay-mode=record").assert_outcomes(passed=1)
    write(pytester, ONE_TEST.replace('agent("Paris")', 'agent("Lyon")'))
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "replay diverged at event #1 on channel 'tool:get_weather' (task main): request changed",
        "  expected #1 tool:get_weather: {'args': {'city': 'Paris'}}",
        "  actual   tool:get_weather: {'args': {'city': 'Lyon'}}",
        "    args.city: 'Paris' -> 'Lyon'",
        "If the change is intended, record the test again:",
        "  pytest --replay-mode=record test_agent.py::test_weather",
        "*cassettes: 1 diverged",
    ])
    assert "UnconsumedWarning" not in result.stdout.str()  # a consequence, not news


def test_divergence_swallowed_by_the_code_still_fails(pytester: pytest.Pytester) -> None:
    body = textwrap.dedent('''
    @pytest.mark.replay
    def test_guarded(replay_run):
        try:
            agent(CITY)
        except Exception as exc:
            raise RuntimeError("the SDK wrapped it") from exc
    ''')
    write(pytester, "CITY = 'Paris'\n" + body)
    run(pytester, "--replay-mode=record").assert_outcomes(passed=1)
    write(pytester, "CITY = 'Oslo'\n" + body)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "replay diverged at event #1 on channel 'tool:get_weather'*",
        "The test then failed with RuntimeError: the SDK wrapped it",
    ])
    write(pytester, "CITY = 'Oslo'\n" + body.replace(
        'raise RuntimeError("the SDK wrapped it") from exc', "pass"))
    result = run(pytester)  # caught and ignored: still a failure
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["replay diverged at event #1*"])


def test_unused_events_follow_the_option(pytester: pytest.Pytester,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    write(pytester, '''
    import os

    @pytest.mark.replay
    def test_weather():
        get_weather("Rome")
        if os.environ.get("EXTRA"):
            agent("Paris")
    ''')
    monkeypatch.setenv("EXTRA", "1")
    run(pytester, "--replay-mode=record").assert_outcomes(passed=1)
    monkeypatch.delenv("EXTRA")
    warn = run(pytester)
    warn.assert_outcomes(passed=1, warnings=1)
    warn.stdout.fnmatch_lines(["*UnconsumedWarning*", "cassettes: 1 replayed, 1 with unused events",
                               "with unused events:",
                               "  cassettes/test_agent/test_weather.replay: 3 recorded event(s)*"])
    run(pytester, "--replay-unused=ignore").assert_outcomes(passed=1)
    fail = run(pytester, "--replay-unused=fail")
    fail.assert_outcomes(failed=1)
    fail.stdout.fnmatch_lines(["*recorded events never asked for", "  unused #2 random*",
                               "cassettes: 1 failed on unused events",
                               "failed on unused events (--replay-unused=fail):",
                               "  cassettes/test_agent/test_weather.replay: 3 recorded event(s)*"])
    pytester.makeini("[pytest]\nreplay_unused = fail\n")
    run(pytester).assert_outcomes(failed=1)
    run(pytester, "--replay-unused=ignore").assert_outcomes(passed=1)
    write(pytester, '''
    @pytest.mark.replay(unused="ignore")
    def test_weather():
        get_weather("Rome")
    ''')
    run(pytester).assert_outcomes(passed=1)  # the marker wins


def test_marker_path_and_replay_dir(pytester: pytest.Pytester) -> None:
    write(pytester, '''
    @pytest.mark.replay("shared/paris")
    def test_named():
        agent("Paris")

    class TestGroup:
        @pytest.mark.replay
        @pytest.mark.parametrize("city", ["Oslo", "Rome"])
        def test_city(self, city):
            agent(city)
    ''')
    run(pytester, "--replay-mode=record").assert_outcomes(passed=3)
    found = sorted(str(p.relative_to(pytester.path)) for p in pytester.path.rglob("*.replay"))
    assert found == ["cassettes/shared/paris.replay",
                     "cassettes/test_agent/TestGroup.test_city[Oslo].replay",
                     "cassettes/test_agent/TestGroup.test_city[Rome].replay"]
    run(pytester).assert_outcomes(passed=3)

    result = run(pytester, "--replay-dir=store", "-k", "Oslo")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "no cassette for this test at store/test_agent/TestGroup.test_city[[]Oslo[]].replay*",
        "  pytest --replay-mode=record --replay-dir=store "
        "'test_agent.py::TestGroup::test_city[[]Oslo[]]'"])
    run(pytester, "--replay-dir=store", "--replay-mode=record", "-k", "Oslo",
                                 ).assert_outcomes(passed=1)
    assert (pytester.path / "store" / "test_agent" / "TestGroup.test_city[Oslo].replay").exists()
    pytester.makeini("[pytest]\nreplay_dir = store\n")
    run(pytester, "-k", "Oslo").assert_outcomes(passed=1)


def test_auto_mode_records_once_then_replays(pytester: pytest.Pytester) -> None:
    write(pytester, ONE_TEST)
    first = run(pytester, "--replay-mode=auto")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["cassettes: 1 recorded"])
    second = run(pytester, "--replay-mode=auto", "-v")
    second.stdout.fnmatch_lines(["cassettes: 1 replayed", "replayed:",
                                 "  cassettes/test_agent/test_weather.replay"])
    a, b = outputs(pytester)
    assert a == b


def test_fixture_alone_implies_the_marker(pytester: pytest.Pytester) -> None:
    write(pytester, '''
    from replay.testing import LiveRun, assert_tool_called

    def test_plain(replay_run):
        assert isinstance(replay_run, LiveRun) and len(replay_run) == 0
        agent("Paris")
        assert_tool_called(replay_run, "get_weather", city="Paris")
        [call] = replay_run.tool_calls
        assert call.result["city"] == "Paris" and call.ok
        assert replay_run.mode.value in ("record", "replay")

    def test_unmarked_runs_live():
        import replay._capture.session
        assert replay._capture.session.current() is None
        agent("Paris")
    ''')
    run(pytester, "--replay-mode=record").assert_outcomes(passed=2)
    assert [p.name for p in pytester.path.rglob("*.replay")] == ["test_plain.replay"]
    run(pytester).assert_outcomes(passed=2)


def test_result_and_cassette_after_the_body(pytester: pytest.Pytester) -> None:
    write(pytester, '''
    import pytest

    @pytest.fixture
    def checked(replay_run):
        yield replay_run
        result = replay_run.result
        assert result is not None and result.ok
        assert result.consumed == (0 if replay_run.mode.value == "record" else 3)
        assert replay_run.cassette().channels == replay_run.channels

    @pytest.mark.replay
    def test_weather(checked):
        agent("Paris")
        assert checked.result is None  # still running
    ''')
    run(pytester, "--replay-mode=record").assert_outcomes(passed=1)
    run(pytester).assert_outcomes(passed=1)


def test_bad_settings_are_usage_errors(pytester: pytest.Pytester) -> None:
    write(pytester, ONE_TEST)
    pytester.makeini("[pytest]\nreplay_mode = sometimes\n")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown record mode 'sometimes'; use one of: record, "
                                 "replay, auto, new-events"])
    pytester.makeini("[pytest]\n")
    write(pytester, '''
    @pytest.mark.replay("a", mode="record")
    def test_bad_marker():
        pass
    ''')
    bad = run(pytester)
    assert bad.ret != 0
    bad.stdout.fnmatch_lines(["*@pytest.mark.replay takes one optional path and the keywords*"])


def test_header_summary_and_stale_cassettes(pytester: pytest.Pytester) -> None:
    write(pytester, ONE_TEST + textwrap.dedent('''
    @pytest.mark.replay
    def test_other():
        agent("Rome")
    '''))
    run(pytester, "--replay-mode=record").assert_outcomes(passed=2)
    stale = pytester.path / "cassettes" / "test_agent" / "test_renamed_long_ago.replay"
    shutil.copy(stale.with_name("test_other.replay"), stale)
    result = run(pytester, "-k", "other", "--replay-allow-host=db.local",
                                          "--replay-drift=warn")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "agent-replay: mode replay, cassettes in cassettes/ beside each test module, unused "
        "events warn, drift warn*, allow hosts db.local",
        "*agent-replay*",
        "cassettes: 1 replayed, 1 unused cassette file(s)",
        "cassette files no collected test uses:",
        "  cassettes/test_agent/test_renamed_long_ago.replay",
    ])
    assert "test_weather.replay" not in result.stdout.str()  # deselected, not stale


def test_allow_hosts_reach_the_run_options(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('''
    import replay._runs.api as api

    def hook(session, run):
        with open("hosts.txt", "a") as f:
            f.write(repr(run.options.get("allow_hosts")) + "\\n")

    def pytest_configure(config):
        api.SESSION_HOOKS.append(hook)

    def pytest_unconfigure(config):
        api.SESSION_HOOKS.remove(hook)
    ''')
    pytester.makeini("[pytest]\nreplay_allow_hosts = 10.0.0.5 10.0.0.6:6379\n")
    write(pytester, '''
    @pytest.mark.replay(allow_hosts=["10.0.0.8"])
    def test_hosts():
        agent("Paris")
    ''')
    run(pytester, "--replay-mode=record", "--replay-allow-host=10.0.0.7"
                                 ).assert_outcomes(passed=1)
    seen = (pytester.path / "hosts.txt").read_text().splitlines()
    assert seen == [repr(("10.0.0.5", "10.0.0.6:6379", "10.0.0.7", "10.0.0.8"))]


def test_drift_warns_or_fails_on_a_changed_context(pytester: pytest.Pytester,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write(pytester, ONE_TEST)
    monkeypatch.setenv("OPENAI_MODEL", "gpt-4o-mini")
    run(pytester, "--replay-mode=record").assert_outcomes(passed=1)
    run(pytester, "--replay-drift=fail").assert_outcomes(passed=1)  # nothing drifted
    monkeypatch.setenv("OPENAI_MODEL", "gpt-5")
    run(pytester).assert_outcomes(passed=1)  # drift is off by default
    warn = run(pytester, "--replay-drift=warn")
    warn.assert_outcomes(passed=1, warnings=1)
    warn.stdout.fnmatch_lines([
        "*DriftWarning: drift check of *test_weather.replay",
        "*OPENAI_MODEL was 'gpt-4o-mini' when recorded, now 'gpt-5'.",
        "cassettes: 1 replayed, 1 with drift warnings",
        "with drift warnings (--replay-drift=warn):",
        "  cassettes/test_agent/test_weather.replay: 1 finding(s)"])
    pytester.makeini("[pytest]\nreplay_drift = fail\n")
    fail = run(pytester)
    fail.assert_outcomes(failed=1)
    fail.stdout.fnmatch_lines([
        "the recording has drifted from the live context:",
        "*OPENAI_MODEL was 'gpt-4o-mini' when recorded, now 'gpt-5'.",
        "Record it again if the change is intended:",
        "  pytest --replay-mode=record test_agent.py::test_weather",
        "cassettes: 1 drifted"])


def test_new_events_mode_extends_the_cassette(pytester: pytest.Pytester) -> None:
    write(pytester, ONE_TEST)
    run(pytester, "--replay-mode=record").assert_outcomes(passed=1)
    write(pytester, ONE_TEST + "    get_weather('Rome')\n")
    run(pytester).assert_outcomes(failed=1)  # strict replay: the extra call diverges
    extended = run(pytester, "--replay-mode=new-events")
    extended.assert_outcomes(passed=1)
    extended.stdout.fnmatch_lines(["cassettes: 1 extended", "extended with new events*"])
    replayed = run(pytester)
    replayed.assert_outcomes(passed=1)
    replayed.stdout.fnmatch_lines(["cassettes: 1 replayed"])
    first, diverged, extended_run, again = outputs(pytester)
    assert first == diverged == extended_run == again  # the recorded part, as recorded
