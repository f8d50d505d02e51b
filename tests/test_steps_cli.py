"""``replay show --steps`` and ``--context N``: exact text (snapshots), JSON, errors.

The snapshots in tests/__snapshots__/steps/ are the commands' real output on a
recorded run, with the values that differ between any two runs masked (times,
the emulator's port, clock readings). ``UPDATE_SNAPSHOTS=1`` rewrites them;
review the diff before committing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import replay
from fixtures.emulator import Emulator
from replay._cli import main
from tests.test_steps import PARALLEL, record_agent

SNAPSHOTS = Path(__file__).parent / "__snapshots__" / "steps"
_MASKS = [
    (re.compile(r"\d+\.\d ms"), "<ms> ms"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+"), "<datetime>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
]


def masked(text: str) -> str:
    for pattern, repl in _MASKS:
        text = pattern.sub(repl, text)
    return text


def assert_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"differs from {path}"


def show(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["show", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def run(tmp_path: Path, emulator: Callable[..., Emulator]) -> Path:
    return record_agent(tmp_path, emulator, "chat", True, *PARALLEL)


def test_show_steps_text(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = show(capsys, str(run), "--steps")
    assert (code, err) == (0, "")
    assert_snapshot("show_steps.txt", masked(out))


def test_show_context_text(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    last = replay.steps(run)[-1]
    code, out, err = show(capsys, str(run), "--context", str(last.seq))
    assert (code, err) == (0, "")
    assert_snapshot("show_context.txt", masked(out))
    code, out, _ = show(capsys, str(run), "--context", str(replay.steps(run)[0].seq))
    assert code == 0 and "against its first call" not in out
    assert "conversation 1, first call of the conversation" in out


def test_show_steps_and_context_json(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = show(capsys, str(run), "--steps", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["schema"] == "agent-replay/steps/1"
    first, last = doc["steps"]
    assert first["kind"] == "model" and first["model"]["api"] == "chat"
    assert [(t["name"], json.loads(t["arguments"]), t["result_seq"]) for t in first["tools"]] == [
        ("steps_weather", {"city": "Paris"}, last["seq"]),
        ("steps_weather", {"city": "Oslo"}, last["seq"])]
    tool_seqs = [t["event"] for t in first["tools"]]
    assert [e["channel"] for e in first["events"] if e["seq"] in tool_seqs] == [
        "tool:steps_weather"] * 2
    assert [e["parent"] for e in first["events"] if e["channel"] == "clock"] == tool_seqs
    assert last["total"]["total_tokens"] == 312 and last["usage"]["input_tokens"] == 180
    code, out, _ = show(capsys, str(run), "--context", str(last["seq"]), "--json")
    ctx = json.loads(out)
    assert code == 0 and ctx["schema"] == "agent-replay/context/1"
    assert (ctx["previous_seq"], ctx["kept"], ctx["tokens_delta"]) == (first["seq"], 2, 80)
    assert [c["status"] for c in ctx["changes"]] == ["added"] * 3
    # --channel keeps only those events in each step.
    code, out, _ = show(capsys, str(run), "--steps", "--channel", "tool")
    assert code == 0 and "clock" not in out and out.count("tool:steps_weather") == 2


def test_show_context_of_an_event_that_is_no_model_call(
        run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tool = replay.steps(run)[0].tools[0].event
    assert tool is not None
    code, out, err = show(capsys, str(run), "--context", str(tool.seq))
    assert code == 2 and out == ""
    assert err == (f"replay: event #{tool.seq} is not a model call "
                   f"(replay show --steps lists them)\n")
    code, _, err = show(capsys, str(run), "--context", "999")
    assert code == 2 and "#999 is not a model call" in err


def test_steps_and_context_show_no_secret(tmp_path: Path, emulator: Callable[..., Emulator],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import openai

    from tests._secret_samples import shape_samples
    key = shape_samples()["openai-project-key"]
    emu = emulator(*PARALLEL)
    path = tmp_path / "raw.replay"
    client = openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-test", max_retries=0)
    with replay.record(path, redact=False):  # the key stays in the file, as asked
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o-mini", messages=[
                {"role": "user", "content": f"my key is {key}, keep it"}])
    assert key in repr([e.request for e in replay.load(path).events])
    calls = [s.seq for s in replay.steps(path) if s.event is not None]
    outputs = [show(capsys, str(path), "--steps", *extra)[1] for extra in ((), ("--json",))]
    outputs += [show(capsys, str(path), "--context", str(seq), *extra)[1]
                for seq in calls for extra in ((), ("--json",))]
    assert all(outputs) and not any(key in out for out in outputs)
    assert any("keep it" in out for out in outputs[2:])  # the message is there, redacted
