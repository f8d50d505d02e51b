"""``replay export otlp``: a run as OpenTelemetry GenAI spans, received by a real
OTLP/HTTP receiver on 127.0.0.1 that decodes the protobuf (opentelemetry-proto)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import replay
from fixtures.emulator import Emulator, ToolCall, Turn, Usage
from replay._analysis.export.trace import epoch_ns
from tests._otlp_receiver import Receiver
from tests._secret_samples import shape_samples

ROOT = Path(__file__).resolve().parent.parent
SECRET = shape_samples()["openai-project-key"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def attrs(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        v = kv.value
        kind = v.WhichOneof("value")
        out[kv.key] = ([x.string_value for x in v.array_value.values] if kind == "array_value"
                       else getattr(v, kind))
    return out


def record_agent(path: Path, emu: Emulator, api: str) -> None:
    client = openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-test", max_retries=0)

    @replay.tool
    def lookup_order(order_id: str) -> dict[str, Any]:
        data = httpx.get(f"{api}/orders/{order_id}").json()
        return {**data, "note": "token " + SECRET}

    @replay.tool
    def notify(to: str) -> str:
        raise RuntimeError("mail server down")

    with replay.record(path, redact=False):
        msgs: list[Any] = [{"role": "system", "content": "You refund orders."},
                           {"role": "user", "content": "Refund A-1"}]
        first = client.chat.completions.create(model="gpt-4o", messages=msgs, temperature=0.2)
        call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
        result = lookup_order("A-1")
        msgs += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}]
        for _ in client.chat.completions.create(model="gpt-4o", messages=msgs, stream=True,
                                                stream_options={"include_usage": True}):
            pass
        with pytest.raises(RuntimeError):
            notify("ops")


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "replay._cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), **env))


def test_spans_reach_a_real_receiver_with_tree_timing_and_genai_attributes(
        tmp_path: Path, emulator: Callable[..., Emulator], receiver: Receiver) -> None:
    emu = emulator(Turn(tool_calls=[ToolCall("lookup_order", {"order_id": "A-1"})],
                        usage=Usage(100, 20)),
                   Turn(text="Refunded 49.90.", usage=Usage(150, 8)),
                   model="gpt-4o-2024-08-06")
    path = tmp_path / "run.replay"
    record_agent(path, emu, receiver.url)
    res = cli("export", "otlp", str(path), "--endpoint", receiver.url,
              "--header", "x-team=agents")
    assert res.returncode == 0, res.stderr
    spans = receiver.spans()
    assert res.stdout.strip() == f"sent {len(spans)} spans of run.replay"
    assert SECRET not in b"".join(receiver.bodies).decode("utf-8", "replace")
    by_id = {s.span_id: s for s in spans}
    assert len({s.trace_id for s in spans}) == 1

    def children(span: Any) -> list[Any]:
        return sorted((s for s in spans if s.parent_span_id == span.span_id),
                      key=lambda s: s.start_time_unix_nano)

    (root,) = [s for s in spans if not s.parent_span_id]
    assert root.name.startswith("invoke_agent ")
    assert attrs(root)["gen_ai.operation.name"] == "invoke_agent"
    assert (attrs(root)["gen_ai.usage.input_tokens"],
            attrs(root)["gen_ai.usage.output_tokens"]) == (250, 28)
    steps = children(root)
    assert [s.name for s in steps] == ["step 0: gpt-4o -> lookup_order",
                                       "step 1: gpt-4o: answer"]
    chat1, tool = children(steps[0])
    chat2, notify = children(steps[1])  # the failing tool was asked by no model: step 1's
    # the model call: GenAI inference span
    a = attrs(chat1)
    assert chat1.name == "chat gpt-4o" and chat1.kind == 3  # SPAN_KIND_CLIENT
    assert (a["gen_ai.operation.name"], a["gen_ai.provider.name"], a["gen_ai.system"]) == (
        "chat", "openai", "openai")
    assert (a["gen_ai.request.model"], a["gen_ai.response.model"]) == (
        "gpt-4o", "gpt-4o-2024-08-06")
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (100, 20)
    assert a["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.response.id"].startswith("chatcmpl-") and a["server.address"] == "127.0.0.1"
    names = [e.name for e in chat1.events]
    assert names == ["gen_ai.system.message", "gen_ai.user.message", "gen_ai.choice"]
    assert attrs(chat1.events[1])["content"] == "Refund A-1"
    assert attrs(chat2)["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs(chat2.events[-1])["message.content"] == "Refunded 49.90."
    assert [e.name for e in chat2.events].count("gen_ai.tool.message") == 1
    # the tool: execute_tool, linked to the model's call id, its HTTP call nested in it
    t = attrs(tool)
    assert tool.name == "execute_tool lookup_order"
    assert (t["gen_ai.operation.name"], t["gen_ai.tool.name"]) == ("execute_tool",
                                                                   "lookup_order")
    answer = next(e for e in replay.load(path).events if e.channel == "http")
    asked = replay.model_call(answer)
    assert asked is not None and t["gen_ai.tool.call.id"] == asked.tool_calls[0].id
    assert json.loads(t["gen_ai.tool.call.arguments"]) == {"order_id": "A-1"}
    assert "[REDACTED" in t["gen_ai.tool.call.result"]
    (get,) = children(tool)
    g = attrs(get)
    assert get.name == "GET" and g["http.response.status_code"] == 200
    assert g["url.full"] == f"{receiver.url}/orders/A-1"
    # the failing tool: status ERROR with the exception as an event
    assert notify.status.code == 2 and "mail server down" in notify.status.message
    assert [e.name for e in notify.events] == ["exception"]
    assert steps[1].status.code == 2 and "tool:notify" in steps[1].status.message
    assert steps[0].status.code != 2 and root.status.code != 2
    # timing: each event span starts and lasts as recorded, on the run's wall clock
    cassette = replay.load(path)
    base = epoch_ns(cassette)
    for span in (chat1, tool, get, chat2, notify):
        ev = next(e for e in cassette.events if e.seq == attrs(span)["replay.seq"])
        assert span.start_time_unix_nano == base + ev.start_ns
        assert span.end_time_unix_nano - span.start_time_unix_nano == ev.duration_ns
    for parent in [root, *steps, tool]:
        for child in children(parent):
            assert parent.start_time_unix_nano <= child.start_time_unix_nano
            assert child.end_time_unix_nano <= parent.end_time_unix_nano
    assert root.start_time_unix_nano == base
    # ids derive from the run: a second export is the same trace, span for span
    sent = len(spans)
    assert replay.export_otlp(path, receiver.url) == sent
    again = receiver.spans()[sent:]
    assert sorted(s.span_id for s in again) == sorted(by_id)
    assert {s.trace_id for s in again} == {root.trace_id}
    # resource: service.name from the run
    resource = receiver.requests[0].resource_spans[0].resource
    assert any(kv.key == "service.name" for kv in resource.attributes)


def test_no_content_and_errors(tmp_path: Path, emulator: Callable[..., Emulator],
                               receiver: Receiver) -> None:
    emu = emulator(Turn(tool_calls=[ToolCall("lookup_order", {"order_id": "A-1"})]),
                   Turn(text="ok"))
    path = tmp_path / "run.replay"
    record_agent(path, emu, receiver.url)
    assert cli("export", "otlp", str(path), "--endpoint", receiver.url + "/v1/traces",
               "--no-content").returncode == 0
    for span in receiver.spans():
        keys = set(attrs(span))
        assert not keys & {"gen_ai.tool.call.arguments", "gen_ai.tool.call.result"}
        assert not [e for e in span.events if e.name.startswith("gen_ai.")]
    # nothing listening: our error, exit 1, no traceback
    dead = cli("export", "otlp", str(path), "--endpoint", "http://127.0.0.1:9", "--timeout",
               "1")
    assert dead.returncode == 1 and "did not accept the spans" in dead.stderr
    assert "Traceback" not in dead.stderr
    no_endpoint = cli("export", "otlp", str(path), OTEL_EXPORTER_OTLP_ENDPOINT="")
    assert no_endpoint.returncode == 1 and "no OTLP endpoint" in no_endpoint.stderr
    missing = cli("export", "otlp", str(tmp_path / "nope.replay"), "--endpoint", receiver.url)
    assert missing.returncode == 2 and "no such cassette" in missing.stderr
    # the SDK missing: a clear error naming the extra
    blocked = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['opentelemetry.sdk.trace'] = None; "
         "from replay._cli import main; sys.exit(main())", "export", "otlp", str(path),
         "--endpoint", receiver.url], capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert blocked.returncode == 1, blocked.stderr
    assert "pip install 'agent-replay[otel]'" in blocked.stderr
    assert "Traceback" not in blocked.stderr
