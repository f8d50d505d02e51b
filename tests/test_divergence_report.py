"""Readable divergence reports: where a long value changed, printed once, last.

One formatter (``replay._cassette.difftext``) serves ``replay play``, the pytest
plugin (tests/test_pytest_plugin_http.py) and ``replay diff``; these tests read
the real output of the real commands on the openai SDK support agent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.emulator import Emulator, Script
from replay._cassette.difftext import change_lines, clip_pair, first_difference
from replay._cassette.divergence import Divergence, Grade
from replay._cassette.events import Event
from replay._cassette.structdiff import Change, diff

ROOT = Path(__file__).resolve().parent.parent
AGENT = ROOT / "fixtures" / "agents" / "support_agent.py"
SCRIPT = ROOT / "fixtures" / "scripts" / "support.json"
REPLAY = [sys.executable, "-m", "replay._cli"]

PROMPT = ("You are Ada, the support agent of Parcelly. Be brief and kind. Use the tools: "
          "look the order up, check the refund policy, then refund the order total.")


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([*REPLAY, *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


# -- the formatter ----------------------------------------------------------------
def test_long_strings_are_clipped_around_the_first_difference_on_both_sides() -> None:
    changed = PROMPT.replace("order total", "order amount")
    old, new = clip_pair(PROMPT, changed, 60)
    assert "order total" in old and "order amount" in new
    assert old.startswith("...") and new.startswith("...")
    assert first_difference(PROMPT, changed) == PROMPT.index("total")
    # The old formatter cut both at the same prefix: two identical lines.
    assert old != new


def test_a_change_shows_the_differing_word_on_both_sides() -> None:
    ch = Change("body.messages[0].content", "changed", PROMPT,
                PROMPT.replace("order total", "order amount"))
    lines = change_lines(ch, 80)
    assert lines[0] == "body.messages[0].content:"
    assert lines[1].startswith("  - ") and "order total" in lines[1]
    assert lines[2].startswith("  + ") and "order amount" in lines[2]
    one = str(ch)
    assert "order total" in one and "order amount" in one and " -> " in one
    assert str(Change("a", "changed", 1, 2)) == "a: 1 -> 2"  # short values stay one line


def test_multiline_text_is_a_unified_diff() -> None:
    old = "\n".join(f"line {i}: nothing to see" for i in range(30))
    new = old.replace("line 17: nothing", "line 17: something")
    lines = change_lines(Change("system", "changed", old, new))
    assert lines[0] == "system: text changed"
    assert "  --- expected" in lines and "  +++ actual" in lines
    assert "  -line 17: nothing to see" in lines and "  +line 17: something to see" in lines
    assert len(lines) < 15  # context, not the 30 lines twice


def _http(seq: int, content: str) -> Event:
    request = {"method": "POST", "url": "http://127.0.0.1:1/v1/chat/completions",
               "body": {"model": "gpt-4o", "messages": [
                   {"role": "system", "content": content}, {"role": "user", "content": "hi"}]}}
    return Event(seq=seq, channel="http", request=request, response={"status": 200})


def test_candidates_are_shown_once_and_never_repeat_the_expected_event() -> None:
    expected, twin_a, twin_b = _http(3, PROMPT), _http(7, PROMPT), _http(11, PROMPT)
    actual = _http(3, PROMPT.replace("order total", "order amount")).request
    d = Divergence(Grade.CHANGED, "http", "main", expected, actual,
                   changes=tuple(diff(expected.request, actual)),
                   candidates=(expected, twin_a, twin_b))
    report = d.report()
    lines = report.splitlines()
    cands = lines[lines.index("  closest recorded candidates:") + 1:]
    cands = [c for c in cands if c.startswith("    #")]
    assert cands == ["    #7, #11 http task main: differs in body.messages[0].content"]
    assert len(set(lines)) == len(lines), report  # no line twice


def test_the_extra_hint_mentions_candidates_only_when_there_are_some() -> None:
    d = Divergence(Grade.EXTRA, "tool:x", "main", None, {"a": 1})
    report = d.report()
    assert "candidates" not in report
    with_one = Divergence(Grade.EXTRA, "tool:x", "main", None, {"a": 1},
                          candidates=(Event(seq=2, channel="tool:x", request={"a": 2}),))
    assert "closest recorded candidates:" in with_one.report()
    assert "candidates above" in with_one.report()


def test_a_change_in_noise_only_says_so() -> None:
    import replay._analysis.compare  # noqa: F401 - registers the noise labeller

    ev = Event(seq=0, channel="tool:t", request={"ticket": "0b5e4f1e-2a6c-4e43-9d3f-7c1d2b8a9e10"})
    actual = {"ticket": "9d4c1a77-5b0e-4f3a-8c21-6e9f0a1b2c3d"}
    d = Divergence(Grade.CHANGED, "tool:t", "main", ev, actual,
                   changes=tuple(diff(ev.request, actual)))
    report = d.report()
    assert "ticket (noise):" in report
    assert "every difference is a value that changes between any two live runs" in report


# -- replay play, as a user runs it ---------------------------------------------------
@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The support agent recorded once against the emulator; (cassette, base URL)."""
    d = tmp_path_factory.mktemp("support")
    cassette = d / "run.replay"
    with Emulator(Script.load(SCRIPT)) as emu:
        rec = cli("record", "-o", str(cassette), "--", "python", str(AGENT),
                  "--base-url", emu.openai_base_url)
        assert rec.returncode == 0, rec.stderr
        return cassette, emu.openai_base_url


def _changed_agent(tmp_path: Path) -> Path:
    text = AGENT.read_text()
    assert "refund the order total" in text
    agent = tmp_path / "support_agent_changed.py"
    agent.write_text(text.replace("refund the order total", "refund the order amount"))
    return agent


def test_play_shows_the_late_word_once_instead_of_the_sdk_traceback(
        recorded: tuple[Path, str], tmp_path: Path) -> None:
    cassette, url = recorded
    p = cli("play", str(cassette), "--", "python", str(_changed_agent(tmp_path)),
            "--base-url", url)
    assert p.returncode == 1
    err = p.stderr
    # The divergence killed the program: no 50-line SDK traceback, the report instead.
    assert "Traceback" not in err and "openai/_base_client.py" not in err
    assert err.count("replay diverged at event #3") == 1
    lines = err.splitlines()
    diffs = lines[lines.index("  differences (expected -> actual):") + 1:]
    assert diffs[0] == "    body.messages[0].content:"
    assert diffs[1].startswith("      - ") and "refund the order total." in diffs[1]
    assert diffs[2].startswith("      + ") and "refund the order amount." in diffs[2]
    expected = next(ln for ln in lines if ln.startswith("  expected #3 http: "))
    actual = next(ln for ln in lines if ln.startswith("  actual   http: "))
    assert "order total" in expected and "order amount" in actual
    candidates = [ln for ln in lines if ln.startswith("    #")]
    assert candidates and len(set(candidates)) == len(candidates)
    assert not any(c.startswith("    #3 ") for c in candidates)  # that is the expected one
    assert "candidates below" not in err
    # Printed last: only the one summary line follows the report.
    assert lines[-1].startswith("replay: served 3 events") and "(reported above)" in lines[-1]
    assert lines[0].startswith("replay diverged at event #3")


WRAPPER = '''
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except Exception as exc:
    raise RuntimeError("the agent gave up") from exc
'''


def test_play_prints_the_report_after_the_programs_own_traceback(
        recorded: tuple[Path, str], tmp_path: Path) -> None:
    cassette, url = recorded
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER)
    p = cli("play", str(cassette), "--", "python", str(wrapper),
            str(_changed_agent(tmp_path)), "--base-url", url)
    assert p.returncode == 1
    err = p.stderr
    tb_end = err.index("RuntimeError: the agent gave up")
    # In the traceback the divergence is one line; the report comes once, after it.
    assert "DivergenceError: replay diverged at event #3 on channel 'http' (task main): " \
           "request changed (the report is printed at the end)" in err[:tb_end]
    assert err.count("differences (expected -> actual):") == 1
    assert err.index("differences (expected -> actual):") > tb_end
    assert err.splitlines()[-1].startswith("replay: served 3 events")


def test_play_of_the_unchanged_agent_still_replays(recorded: tuple[Path, str]) -> None:
    cassette, url = recorded
    p = cli("play", str(cassette), "--", "python", str(AGENT), "--base-url", url)
    assert p.returncode == 0, p.stderr
    assert "refunded 49.90 USD" in p.stdout or "refunded" in p.stdout


# -- replay diff ------------------------------------------------------------------------
def test_diff_shows_the_late_word_on_both_sides(recorded: tuple[Path, str],
                                                tmp_path: Path) -> None:
    cassette, _ = recorded
    other = tmp_path / "changed.replay"
    with Emulator(Script.load(SCRIPT)) as emu:
        rec = cli("record", "-o", str(other), "--", "python", str(_changed_agent(tmp_path)),
                  "--base-url", emu.openai_base_url)
        assert rec.returncode == 0, rec.stderr
    p = cli("diff", str(cassette), str(other))
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    at = lines.index("      request.body.messages[0].content:")
    assert "refund the order total." in lines[at + 1] and lines[at + 1].startswith("        - ")
    assert "refund the order amount." in lines[at + 2] and lines[at + 2].startswith("        + ")
