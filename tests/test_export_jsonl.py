"""``replay export jsonl``: the run, its steps and its events, one JSON object a line."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai

import replay
from fixtures.emulator import Emulator, ToolCall, Turn, Usage
from tests._secret_samples import shape_samples

ROOT = Path(__file__).resolve().parent.parent
SECRET = shape_samples()["github-token"]


def test_jsonl_lines_for_run_steps_and_events(tmp_path: Path,
                                              emulator: Callable[..., Emulator]) -> None:
    emu = emulator(Turn(tool_calls=[ToolCall("search", {"q": "shoes"})], usage=Usage(30, 5)),
                   Turn(text="Found them.", usage=Usage(40, 3)), model="gpt-4o-2024-08-06")
    client = openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-test", max_retries=0)

    @replay.tool
    def search(q: str) -> dict[str, Any]:
        return {"hits": 3, "token": SECRET}

    path = tmp_path / "run.replay"
    with replay.record(path, redact=False):
        msgs: list[Any] = [{"role": "user", "content": "find shoes"}]
        first = client.chat.completions.create(model="gpt-4o", messages=msgs)
        call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
        msgs += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": json.dumps(search("shoes"))}]
        client.chat.completions.create(model="gpt-4o", messages=msgs)
    out = tmp_path / "run.jsonl"
    res = subprocess.run([sys.executable, "-m", "replay._cli", "export", "jsonl", str(path),
                          "-o", str(out)], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert SECRET not in text
    rows = [json.loads(line) for line in text.splitlines()]
    run, *rest = rows
    assert run["type"] == "run" and run["usage"]["calls"] == 2
    assert (run["usage"]["input_tokens"], run["usage"]["output_tokens"]) == (70, 8)
    steps = [r for r in rest if r["type"] == "step"]
    events = [r for r in rest if r["type"] == "event"]
    assert [s["name"] for s in steps] == ["gpt-4o -> search", "gpt-4o: answer"]
    assert len(events) == run["events"] == len(replay.load(path).events)
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    tool = next(e for e in events if e["channel"] == "tool:search")
    assert tool["step"] == 0 and tool["response"]["hits"] == 3
    (asked,) = steps[0]["tools"]
    assert (asked["name"], asked["event"], json.loads(asked["arguments"])) == (
        "search", tool["seq"], {"q": "shoes"})
    assert asked["result_seq"] == steps[1]["seq"]
    answers = [e["model_call"]["answer"] for e in events if "model_call" in e]
    assert answers == ['-> search({"q":"shoes"})', "Found them."]
    assert all(e["step"] is not None for e in events)
    # the Python API writes the same lines
    buf = io.StringIO()
    assert replay.export_jsonl(path, buf) == len(rows)
    assert buf.getvalue() == text


def test_run_ids_of_a_store_work_as_run(tmp_path: Path) -> None:
    from replay._runs.store import LocalStore, RunRow, RunStatus, new_run_id

    store = LocalStore(str(tmp_path / "runs"))
    rid = new_run_id(1_780_000_000.0)
    path = store.new_run(rid)
    with replay.record(path, metadata={"which": "stored"}):
        replay.tool(lambda: 1, name="one")()
    store.put(path, RunRow(id=rid, start=1_780_000_000.0, entry="svc:agent", duration=0.1,
                           status=RunStatus.OK))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for args in (["export", "jsonl", "last", "--store", str(tmp_path / "runs")],
                 ["report", "last", "last", "-o", str(tmp_path / "r.html"),
                  "--store", str(tmp_path / "runs")]):
        res = subprocess.run([sys.executable, "-m", "replay._cli", *args], capture_output=True,
                             text=True, cwd=tmp_path, env=env, timeout=120)
        assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in subprocess.run(
        [sys.executable, "-m", "replay._cli", "export", "jsonl", "last", "--store",
         str(tmp_path / "runs")], capture_output=True, text=True, cwd=tmp_path, env=env,
        timeout=120).stdout.splitlines()]
    assert rows[0]["meta"]["which"] == "stored"
    assert any(r.get("channel") == "tool:one" for r in rows)
    missing = subprocess.run([sys.executable, "-m", "replay._cli", "export", "jsonl", "last~5",
                              "--store", str(tmp_path / "runs")], capture_output=True,
                             text=True, cwd=tmp_path, env=env, timeout=120)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
