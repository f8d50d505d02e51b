"""``replay.diff``: alignment, statuses, first divergence, on synthetic logs and real runs."""

from __future__ import annotations

import datetime
import itertools
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import time_machine

import replay
import replay._capture.patch
from fixtures.agents import core_agent
from replay import DiffStatus, Event
from replay._analysis.align import lcs
from replay._cassette import CassetteWriter, Header

ROOT = Path(__file__).resolve().parent.parent


def ev(seq: int, channel: str, request: replay.Value, response: replay.Value = None,
       task: str = "main", **kw: object) -> Event:
    return Event(seq, channel, request, response, task=task, **kw)  # type: ignore[arg-type]


def run_of(*specs: tuple[str, replay.Value, replay.Value]) -> list[Event]:
    return [ev(i, ch, req, resp) for i, (ch, req, resp) in enumerate(specs)]


BASE: list[tuple[str, replay.Value, replay.Value]] = [
    ("clock", {"fn": "time.time"}, 1.0),
    ("tool:search", {"args": {"q": "paris"}}, ["a", "b"]),
    ("random", {"fn": "random"}, 0.5),
    ("tool:book", {"args": {"id": "a"}}, "ok"),
    ("uuid", {"fn": "uuid4"}, "u-1"),
]


def test_identical_runs_are_the_same() -> None:
    d = replay.diff(run_of(*BASE), run_of(*BASE))
    assert d.same and d.first_divergence is None and d.first_index is None
    assert [p.status for p in d.pairs] == [DiffStatus.SAME] * 5
    assert [(p.left_seq, p.right_seq) for p in d.pairs] == [(i, i) for i in range(5)]
    assert d.counts()["same"] == 5 and not d.differing


def test_changed_answer_is_the_first_divergence() -> None:
    right = list(BASE)
    right[1] = ("tool:search", {"args": {"q": "paris"}}, ["a", "c"])
    d = replay.diff(run_of(*BASE), run_of(*right))
    first = d.first_divergence
    assert first is not None and first.status is DiffStatus.CHANGED
    assert (first.left_seq, first.right_seq) == (1, 1)
    assert [str(c) for c in first.changes] == ["response[1]: 'b' -> 'c'"]
    assert first.what() == "response changed"
    assert d.counts() == {"same": 4, "changed": 1, "only-left": 0, "only-right": 0, "moved": 0}


def test_changed_request_pairs_the_same_call() -> None:
    right = list(BASE)
    right[3] = ("tool:book", {"args": {"id": "b"}}, "ok")
    d = replay.diff(run_of(*BASE), run_of(*right))
    (pair,) = d.differing
    assert pair.status is DiffStatus.CHANGED and pair.left_seq == 3
    assert [c.path for c in pair.changes] == ["request.args.id"]


def test_inserted_removed_and_moved_events() -> None:
    right = [BASE[0], ("clock", {"fn": "time.time_ns"}, 5), BASE[1], BASE[3], BASE[2]]
    # Extra or missing clock and uuid reads are noise: only include_noise counts them.
    assert replay.diff(run_of(*BASE), run_of(*right)).same
    d = replay.diff(run_of(*BASE), run_of(*right), include_noise=True)
    by_status = {p.status: p for p in d.differing}
    assert by_status[DiffStatus.ONLY_RIGHT].right_seq == 1
    assert by_status[DiffStatus.ONLY_LEFT].left_seq == 4  # the uuid
    # random and tool:book are on separate streams: their order is not compared,
    # but within the clock stream the extra time_ns read is only-right.
    assert d.first_divergence is not None and d.first_divergence.status is DiffStatus.ONLY_RIGHT
    # Rows come in run order: the only-right row sits after the row it follows.
    assert [(p.left_seq, p.right_seq) for p in d.pairs][:3] == [(0, 0), (None, 1), (1, 2)]


def test_moved_within_a_stream() -> None:
    left = run_of(("tool:t", {"args": {"n": 1}}, 1), ("tool:t", {"args": {"n": 2}}, 2),
                  ("tool:t", {"args": {"n": 3}}, 3))
    right = run_of(("tool:t", {"args": {"n": 3}}, 3), ("tool:t", {"args": {"n": 1}}, 1),
                   ("tool:t", {"args": {"n": 2}}, 2))
    d = replay.diff(left, right)
    (moved,) = d.differing
    assert moved.status is DiffStatus.MOVED and (moved.left_seq, moved.right_seq) == (2, 0)
    assert moved.changes == ()


def test_tasks_are_aligned_separately() -> None:
    a = [ev(0, "tool:t", {"args": {"x": 1}}, 1, "main/1"),
         ev(1, "tool:t", {"args": {"x": 2}}, 2, "main/2")]
    b = [ev(0, "tool:t", {"args": {"x": 2}}, 2, "main/2"),
         ev(1, "tool:t", {"args": {"x": 1}}, 1, "main/1")]
    assert replay.diff(a, b).same


def test_repeated_identical_requests_keep_their_answers_aligned() -> None:
    left = run_of(*[("uuid", {"fn": "uuid4"}, f"u{i}") for i in range(50)])
    right = [e for e in left if e.seq != 20]
    right = [Event(i, e.channel, e.request, e.response) for i, e in enumerate(right)]
    d = replay.diff(left, right, include_noise=True)
    assert [(p.status, p.left_seq) for p in d.differing] == [(DiffStatus.ONLY_LEFT, 20)]


def test_timing_is_reported_not_compared() -> None:
    a = [ev(0, "clock", {"fn": "time.time"}, 1.0, start_ns=10, duration_ns=100)]
    b = [ev(0, "clock", {"fn": "time.time"}, 1.0, start_ns=50, duration_ns=350)]
    d = replay.diff(a, b)
    assert d.same
    assert d.pairs[0].duration_delta_ns == 250 and d.pairs[0].start_delta_ns == 40
    assert (d.left_duration_ns, d.right_duration_ns) == (110, 400)


def test_errors_are_compared() -> None:
    err = replay.RecordedError("builtins.RuntimeError", "declined")
    a = [ev(0, "tool:book", {"args": {}}, None, error=err)]
    b = [ev(0, "tool:book", {"args": {}}, None,
            error=replay.RecordedError("builtins.RuntimeError", "accepted?"))]
    (pair,) = replay.diff(a, b).differing
    assert [c.path for c in pair.changes] == ["error.message"]


def test_ignore_prefixes() -> None:
    a = run_of(("tool:t", {"args": {}}, {"id": "x1", "v": 1}))
    b = run_of(("tool:t", {"args": {}}, {"id": "x2", "v": 1}))
    assert not replay.diff(a, b).same
    assert replay.diff(a, b, ignore=["response.id"]).same


def test_lcs_is_optimal_on_small_inputs() -> None:
    rnd = random.Random(5)

    def best(a: list[int], b: list[int]) -> int:
        t = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i, x in enumerate(a):
            for j, y in enumerate(b):
                t[i + 1][j + 1] = t[i][j] + 1 if x == y else max(t[i][j + 1], t[i + 1][j])
        return t[-1][-1]

    for _ in range(300):
        a = [rnd.randint(0, 3) for _ in range(rnd.randint(0, 25))]
        b = [rnd.randint(0, 3) for _ in range(rnd.randint(0, 25))]
        pairs = lcs(a, b)
        assert all(a[i] == b[j] for i, j in pairs)
        assert all(p < q for p, q in itertools.pairwise(pairs))
        assert len(pairs) == best(a, b)


def test_scales_to_ten_thousand_events() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from bench_diff import make_run
    finally:
        sys.path.remove(str(ROOT / "bench"))
    d = replay.diff(make_run(10_000, variant=False), make_run(10_000, variant=True))
    assert d.counts() == {"same": 9992, "changed": 7, "only-left": 1, "only-right": 1,
                          "moved": 0}


# -- two real runs of the sample agent --------------------------------------------------
@pytest.fixture
def deterministic(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, float | None],
                                                                        list[str]]]:
    """Record the sample agent with the clock, random and urandom pinned, so that two
    recordings differ only where a test makes them differ."""
    def record(path: str, temp: float | None = None) -> list[str]:
        random.seed(7)
        with monkeypatch.context() as m:
            m.setattr(replay._capture.randomness, "_urandom", random.Random(99).randbytes)
            if temp is not None:  # the weather API answers something else
                m.setattr(random, "uniform", lambda a, b: temp)
            at = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
            with time_machine.travel(at, tick=False), replay.record(path):
                return core_agent.run("Paris", 0.0)
    yield record


def test_two_agent_runs_differing_in_one_tool_answer(
        tmp_path: Path, deterministic: Callable[[str, float | None], list[str]]) -> None:
    a, b, c = (str(tmp_path / n) for n in ("a.replay", "b.replay", "c.replay"))
    assert deterministic(a, None) == deterministic(b, None)
    deterministic(c, 99.0)
    assert replay.diff(a, b).same
    d = replay.diff(replay.load(a), c)
    weather = next(e for e in replay.load(a).events if e.channel == "tool:get_weather")
    first = d.first_divergence
    assert first is not None and first.left is not None and first.right is not None
    assert first.channel == "tool:get_weather" and first.left.seq == weather.seq
    assert first.right.seq == weather.seq
    assert [str(ch) for ch in first.changes] == [
        f"response.temp: {weather.response['temp']!r} -> 99.0"]  # type: ignore[index,call-overload]
    assert all(p.left is None or p.left.seq >= weather.seq for p in d.differing)

    out = subprocess.run([sys.executable, "-m", "replay._cli", "diff", a, c],
                         capture_output=True, text=True, env=dict(os.environ,
                                                                 PYTHONPATH=str(ROOT)))
    assert out.returncode == 1, out.stderr
    assert (f"first divergence: left #{weather.seq} / right #{weather.seq}, "
            "tool:get_weather (task main): response changed") in out.stdout
    assert "response.temp:" in out.stdout and "-> 99.0" in out.stdout

    js = subprocess.run([sys.executable, "-m", "replay._cli", "diff", "--json", a, c],
                        capture_output=True, text=True,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert js.returncode == 1
    doc = json.loads(js.stdout)
    assert doc["schema"] == "agent-replay/diff/2" and doc["same"] is False
    fd = doc["first_divergence"]
    assert (fd["left_seq"], fd["right_seq"], fd["channel"], fd["status"]) == (
        weather.seq, weather.seq, "tool:get_weather", "changed")
    assert fd["changes"][0]["path"] == "response.temp" and fd["changes"][0]["new"] == 99.0
    assert all(p["status"] != "same" for p in doc["pairs"])

    same = subprocess.run([sys.executable, "-m", "replay._cli", "diff", a, b],
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert same.returncode == 0 and "runs are the same" in same.stdout


def test_cli_error_exit_code(tmp_path: Path) -> None:
    w = CassetteWriter(tmp_path / "ok.replay", Header.new())
    w.close()
    out = subprocess.run([sys.executable, "-m", "replay._cli", "diff",
                          str(tmp_path / "ok.replay"), str(tmp_path / "missing.replay")],
                         capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 2 and "missing.replay" in out.stderr
    (tmp_path / "junk.replay").write_bytes(b"not a cassette at all")
    out = subprocess.run([sys.executable, "-m", "replay._cli", "diff",
                          str(tmp_path / "ok.replay"), str(tmp_path / "junk.replay")],
                         capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 2
