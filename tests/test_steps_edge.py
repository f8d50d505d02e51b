"""Steps and context diffs on odd and hostile event logs: never a traceback, never a lost event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import replay
from replay._cli import main

URL = "http://127.0.0.1:1/v1/chat/completions"


def chat(seq: int, messages: list[dict[str, object]], answer: object, *,
         parent: int | None = None, task: str = "main") -> replay.Event:
    body = json.dumps(answer).encode() if not isinstance(answer, bytes) else answer
    return replay.Event(seq, "http", {"method": "POST", "url": URL,
                                      "body": {"model": "gpt-4o", "messages": messages}},
                        {"status": 200, "headers": [["content-type", "application/json"]]},
                        chunks=(replay.Chunk(body, 0),), parent=parent, task=task,
                        start_ns=seq * 10, duration_ns=5)


def asked(*calls: tuple[str, str, dict[str, object]]) -> dict[str, object]:
    return {"model": "gpt-4o", "choices": [{"message": {"role": "assistant", "content": None,
            "tool_calls": [{"id": i, "type": "function", "function": {
                "name": n, "arguments": json.dumps(a)}} for i, n, a in calls]}}]}


USER = [{"role": "user", "content": "hi"}]


def test_hostile_shapes_are_read_as_far_as_they_go() -> None:
    events = [
        replay.Event(0, "http", "not a map", None),
        replay.Event(1, "http", {"method": "POST", "url": URL, "body": b"\xff\xfe not json"},
                     {"status": 500}),
        chat(2, USER, b"data: {broken\n\n"),
        chat(3, [{"role": 7, "content": [{"type": None}, 3]}], {"choices": "x", "usage": []}),
        replay.Event(4, "tool:f", {"args": "not a map"}, None, parent=4),   # its own parent
        replay.Event(5, "clock", {"fn": "time.time"}, 1.0, parent=99),      # unknown parent
        replay.Event(6, "tool:", None, None),
        chat(7, USER, asked(("a", "f", {"x": 1}), ("a", "f", {"x": 1}))),  # the same id twice
        replay.Event(8, "http", {"method": "POST", "url": "http://h/v1beta/models/:generateContent",
                                 "body": {"contents": "hi"}}, {"status": 200, "body": b"[1, 2]"}),
    ]
    found = replay.steps(events)
    assert sorted(e.seq for s in found for e in s.events) == list(range(9))
    for s in found:
        if s.event is not None:
            ctx = replay.context_diff(events, s.seq)
            assert ctx is not None and ctx.seq == s.seq


def test_a_tool_result_links_once_and_cycles_in_parents_end(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    events = [
        chat(0, USER, asked(("c1", "f", {"x": 1}), ("c2", "f", {"x": 2}))),
        replay.Event(1, "tool:f", {"args": {"x": 2}}, 2, task="main/t#1"),  # ran second first
        replay.Event(2, "tool:f", {"args": {"x": 1}}, 1, task="main/t#0"),
        replay.Event(3, "clock", {"fn": "time.time"}, 1.0, parent=4),       # a parent cycle
        replay.Event(4, "clock", {"fn": "time.time"}, 1.0, parent=3),
        chat(5, [*USER, {"role": "assistant", "tool_calls": []},
                 {"role": "tool", "tool_call_id": "c1", "content": "1"},
                 {"role": "tool", "tool_call_id": "c2", "content": "2"},
                 {"role": "tool", "tool_call_id": "c2", "content": "2"}],
             {"choices": [{"message": {"role": "assistant", "content": "done"}}]}),
    ]
    first, last = replay.steps(events)
    assert [(t.call.id, t.event.seq if t.event else None, t.result_seq) for t in first.tools] \
        == [("c1", 2, 5), ("c2", 1, 5)]
    assert {e.seq for e in first.events} == {0, 1, 2, 3, 4} and last.tools == ()
    ctx = replay.context_diff(events, 5)
    assert ctx is not None and ctx.previous_seq == 0
    # A truncated, then changed history.
    q = {"role": "user", "content": "another question"}
    events += [chat(6, [{"role": "user", "content": "h"}], {"choices": []}),
               chat(7, [q, {"role": "tool", "content": "a result, and more of it"},
                        {"role": "user", "content": "x"}], {"choices": []}),
               chat(8, [q, {"role": "tool", "content": "a result"},
                        {"role": "user", "content": "y"}], {"choices": []})]
    ctx = replay.context_diff(events, 8)
    assert ctx is not None and ctx.previous_seq == 7 and ctx.kept == 1
    assert [(c.status.value, c.previous_index, c.index) for c in ctx.changes] == [
        ("truncated", 1, 1), ("changed", 2, 2)]
    assert ctx.changes[1].diff.splitlines()[-2:] == ["-x", "+y"]
    assert ctx.changes[0].chars == len("a result") - len("a result, and more of it")


def test_show_steps_on_a_damaged_or_foreign_file(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.replay"
    bad.write_bytes(b"not a cassette at all")
    assert main(["show", str(bad), "--steps"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("replay: ") and "Traceback" not in err
    assert main(["show", str(tmp_path / "missing.replay"), "--context", "3"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("replay: ")
    # A truncated cassette: the steps it holds, and exit 1.
    good = tmp_path / "good.replay"
    with replay.record(good):
        import time
        time.time()
        time.time()
    data = good.read_bytes()
    cut = tmp_path / "cut.replay"
    cut.write_bytes(data[: len(data) - 40])
    code = main(["show", str(cut), "--steps"])
    out, err = capsys.readouterr()
    assert code == 1 and "setup" in out and "cassette damaged" in err


def test_context_report_of_changed_truncated_and_removed_messages() -> None:
    from replay._analysis.stepview import context_text
    q = {"role": "user", "content": "the question"}
    events = [
        chat(0, [{"role": "system", "content": "Be brief."}, q,
                 {"role": "tool", "content": "line one\nline two\nline three"},
                 {"role": "assistant", "content": "an aside"},
                 {"role": "user", "content": "first try"}], {"choices": []}),
        chat(1, [{"role": "system", "content": "Be very brief."}, q,
                 {"role": "tool", "content": "line one\nline two"},
                 {"role": "user", "content": "second try"},
                 {"role": "user", "content": "and more"}], {"choices": []}),
    ]
    ctx = replay.context_diff(events, 1)
    assert ctx is not None
    assert context_text(ctx, "openai chat gpt-4o") == """\
context of #1 (openai chat gpt-4o): conversation 1, against previous call #0
5 messages: 1 kept, 1 added, 2 changed, 1 removed, 1 truncated
characters 66 -> 61 (-5); prompt tokens not reported
~ [0] system changed, 9 -> 14 chars (+5)
    --- #0 [0] system
    +++ #1 [0] system
    @@ -1 +1 @@
    -Be brief.
    +Be very brief.
< [2] tool truncated, 28 -> 17 chars (-11)
    --- #0 [2] tool
    +++ #1 [2] tool
    @@ -1,3 +1,2 @@
     line one
     line two
    -line three
- [was 3] assistant removed, 8 chars
    an aside
~ [3] user changed (was [4]), 9 -> 10 chars (+1)
    --- #0 [4] user
    +++ #1 [3] user
    @@ -1 +1 @@
    -first try
    +second try
+ [4] user added, 8 chars
    and more
"""


def test_a_step_says_what_raised() -> None:
    from replay._analysis.stepview import step_header, steps_json
    boom = replay.RecordedError("builtins.ValueError", "no such order")
    events = [chat(0, USER, asked(("c1", "f", {"x": 1}))),
              replay.Event(1, "tool:f", {"args": {"x": 1}}, None, error=boom)]
    [step] = replay.steps(events)
    assert step.errors == (events[1],) and step.tools[0].event is events[1]
    assert step_header(step).endswith("|  1 raised")
    assert steps_json([step])["steps"][0]["errors"] == [1]
