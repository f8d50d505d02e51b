"""Drift: fingerprints in headers, lenient replay findings, safe probes (loopback only)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import replay
from fixtures.emulator import Emulator, Script, Turn
from replay import Severity
from tests._secret_samples import shape_samples

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = "You plan trips.\nAnswer briefly."
TOOLS: Any = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


def chat_agent(base_url: str, *, system: str = SYSTEM, tools: Any = TOOLS,
               model: str = "gpt-4o") -> str:
    """A two-call agent on the real OpenAI SDK."""
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    messages: Any = [{"role": "system", "content": system},
                     {"role": "user", "content": "Weekend in Rome?"}]
    first = client.chat.completions.create(model=model, messages=messages, tools=tools)
    messages.append({"role": "assistant", "content": first.choices[0].message.content})
    messages.append({"role": "user", "content": "And the weather?"})
    second = client.chat.completions.create(model=model, messages=messages, tools=tools)
    return str(second.choices[0].message.content)


@pytest.fixture
def recorded(tmp_path: Path, emulator: Callable[..., Emulator]) -> tuple[Path, Emulator]:
    emu = emulator(Turn(text="Rome is lovely.", repeat=True), model="gpt-4o-2024-08-06")
    path = tmp_path / "chat.replay"
    with replay.record(path):
        chat_agent(emu.openai_base_url)
    return path, emu


def kinds(report: replay.DriftReport) -> list[str]:
    return [f.kind for f in report.findings if f.seq is not None]


# -- fingerprint ---------------------------------------------------------------------------
def test_header_fingerprint_has_names_not_secrets(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-abcdefghijklmnopqrstuvwxyz")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://user:hunter2@proxy.example/v1")
    path = tmp_path / "fp.replay"
    with replay.record(path):
        pass
    meta = replay.read_header(path).meta["fingerprint"]
    assert isinstance(meta, dict)
    text = json.dumps(meta)
    assert "OPENAI_API_KEY" in meta["env_names"]  # type: ignore[operator]
    assert "abcdefghijklmnop" not in text and "hunter2" not in text
    assert meta["env_values"] == {**meta["env_values"],  # type: ignore[dict-item]
                                  "OPENAI_BASE_URL": "https://proxy.example/v1"}
    packages = meta["packages"]
    assert isinstance(packages, dict) and packages["openai"] == openai.__version__
    assert packages["httpx"] == httpx.__version__


def test_fingerprint_combines_header_and_events(recorded: tuple[Path, Emulator]) -> None:
    path, _ = recorded
    fp = replay.fingerprint(path)
    assert fp.models_requested == ("gpt-4o",)
    assert fp.models_served == ("gpt-4o-2024-08-06",)
    assert fp.system_fingerprints == ("fp_emulator",)
    assert len(fp.system_prompts) == 1 and list(fp.tool_schemas) == ["get_weather"]
    assert fp.endpoints == (f"POST {recorded[1].url}/v1/chat/completions",)
    assert fp.python is not None and fp.packages["openai"] == openai.__version__
    live = replay.fingerprint()
    assert live.python == fp.python and live.models_requested == ()


def test_offline_drift_compares_the_process_context(recorded: tuple[Path, Emulator]) -> None:
    path, _ = recorded
    live = replay.fingerprint()
    assert not replay.drift(path, live=live).at_least("warning")
    changed = dataclasses.replace(
        live, python="3.99.0", packages={**live.packages, "openai": "0.1.0"},
        env_names=(*live.env_names, "NEW_FLAG"),
        env_values={**live.env_values, "OPENAI_BASE_URL": "http://elsewhere/v1"})
    report = replay.drift(path, live=changed)
    by_kind = {f.kind: f for f in report.general}
    assert by_kind["python"].severity is Severity.WARNING and by_kind["python"].live == "3.99.0"
    assert by_kind["package"].message == f"openai was {openai.__version__} when recorded, " \
                                         "now 0.1.0."
    assert "NEW_FLAG" in by_kind["env"].message or any(
        "NEW_FLAG" in f.message for f in report.general)
    assert any(f.live == "http://elsewhere/v1" for f in report.general)


# -- lenient replay ------------------------------------------------------------------------
def test_system_prompt_edit_is_a_finding_with_a_text_diff(
        recorded: tuple[Path, Emulator]) -> None:
    path, emu = recorded
    report = replay.drift(path, agent=lambda: chat_agent(
        emu.openai_base_url, system="You plan trips.\nAnswer in detail."))
    found = [f for f in report.findings if f.kind == "system_prompt"]
    assert len(found) == 2  # both model calls carry the edited prompt
    assert found[0].seq is not None and found[0].channel == "http"
    assert "-Answer briefly.\n+Answer in detail.\n" in found[0].detail
    assert set(kinds(report)) == {"system_prompt"}
    assert report.replayed and set(report.by_seq()) == {f.seq for f in found}
    assert "system prompt changed" in report.report()


def test_findings_are_redacted_even_from_an_unredacted_cassette(
        tmp_path: Path, emulator: Callable[..., Emulator]) -> None:
    keys = shape_samples()
    old, new = keys["anthropic-key"], keys["github-token"]
    emu = emulator(Turn(text="Rome is lovely.", repeat=True))
    path = tmp_path / "raw.replay"
    with replay.record(path, redact=False):  # the key is in the cassette
        chat_agent(emu.openai_base_url, system=f"You plan trips with key {old}.")
    report = replay.drift(path, agent=lambda: chat_agent(
        emu.openai_base_url, system=f"You plan trips with key {new}."))
    assert [f for f in report.findings if f.kind == "system_prompt"]
    shown = report.report() + json.dumps(report.to_json())
    assert old not in shown and new not in shown
    assert "REDACTED" in shown


def test_tool_schema_change_names_the_field(recorded: tuple[Path, Emulator]) -> None:
    path, emu = recorded
    tools = json.loads(json.dumps(TOOLS))
    tools[0]["function"]["parameters"]["properties"]["unit"] = {"type": "string"}
    tools[0]["function"]["description"] = "Weather in a city, now with units"
    report = replay.drift(path, agent=lambda: chat_agent(emu.openai_base_url, tools=tools))
    found = [f for f in report.findings if f.kind == "tool_schema"]
    assert found and "get_weather" in found[0].message
    assert "parameters.properties.unit" in found[0].message
    assert "description" in found[0].message


def test_new_model_id_is_an_error_and_the_run_goes_on(recorded: tuple[Path, Emulator]) -> None:
    path, emu = recorded
    report = replay.drift(path, agent=lambda: chat_agent(emu.openai_base_url,
                                                         model="gpt-4.1-mini"))
    found = [f for f in report.findings if f.kind == "model"]
    assert len(found) == 2 and found[0].severity is Severity.ERROR
    assert (found[0].recorded, found[0].live) == ("gpt-4o", "gpt-4.1-mini")
    assert report.worst is Severity.ERROR


def test_unchanged_agent_has_no_event_findings(recorded: tuple[Path, Emulator]) -> None:
    path, emu = recorded
    report = replay.drift(path, agent=lambda: chat_agent(emu.openai_base_url))
    assert report.by_seq() == {}


def test_extra_call_stops_the_lenient_replay(recorded: tuple[Path, Emulator]) -> None:
    path, emu = recorded

    @replay.tool
    def drift_extra_lookup(q: str) -> str:
        return q

    def agent() -> None:
        drift_extra_lookup("new step")
        chat_agent(emu.openai_base_url)

    report = replay.drift(path, agent=agent)
    (order,) = [f for f in report.findings if f.kind == "call_order"]
    assert order.severity is Severity.ERROR and "tool:drift_extra_lookup" in order.message


# -- probes ----------------------------------------------------------------------------------
SIDE_EFFECTS: list[str] = []
PRICE = {"value": 100}


@replay.tool(safe=True)
def drift_price(item: str) -> dict[str, object]:
    """A read-only lookup: safe to probe."""
    return {"item": item, "price": PRICE["value"]}


@replay.tool
def drift_send_email(to: str) -> str:
    """Has a side effect: never probed."""
    SIDE_EFFECTS.append(to)
    return "sent"


def test_probe_runs_safe_tools_only(tmp_path: Path) -> None:
    path = tmp_path / "tools.replay"
    SIDE_EFFECTS.clear()
    PRICE["value"] = 100
    with replay.record(path):
        drift_price("rome-hotel")
        drift_send_email("a@example.org")
    assert SIDE_EFFECTS == ["a@example.org"]
    assert not replay.drift(path, probe=True).by_seq()  # same live answer: no finding
    PRICE["value"] = 140
    report = replay.drift(path, probe=True)
    assert SIDE_EFFECTS == ["a@example.org"]  # the unsafe tool never ran again
    (finding,) = [f for f in report.findings if f.kind == "probe"]
    assert finding.channel == "tool:drift_price" and finding.severity is Severity.WARNING
    assert "response.price" not in finding.detail and "price: 100 -> 140" in finding.detail
    assert "'drift_price' now answers differently" in finding.message
    assert report.probed


class _Api(BaseHTTPRequestHandler):
    status = 200
    body = b'{"rate": 1.08}'
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(type(self).status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(type(self).body)))
        self.end_headers()
        self.wfile.write(type(self).body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Api.status, _Api.body, _Api.hits = 200, b'{"rate": 1.08}', 0
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_probe_repeats_get_to_allowed_hosts_only(tmp_path: Path, api: str) -> None:
    path = tmp_path / "get.replay"
    with replay.record(path), httpx.Client() as client:
        client.get(f"{api}/rates?base=EUR")
    assert _Api.hits == 1
    _Api.status, _Api.body = 404, b'{"error": "gone"}'
    assert not replay.drift(path, probe=True).by_seq()
    assert _Api.hits == 1  # no host allowed: nothing sent
    report = replay.drift(path, probe=True, allow_hosts=["127.0.0.1"])
    assert _Api.hits == 2
    (finding,) = [f for f in report.findings if f.kind == "probe"]
    assert finding.message.startswith("recorded 200 with {'rate': 1.08}, live 404 with")


def test_probe_models_sees_a_new_served_model(recorded: tuple[Path, Emulator]) -> None:
    path, emu = recorded
    emu.load(Script([Turn(text="Rome is lovely.", repeat=True)], model="gpt-4o-2024-11-20"),
             clear_log=True)
    report = replay.drift(path, probe=True, probe_models=True, allow_hosts=["127.0.0.1"])
    (finding,) = [f for f in report.findings if f.kind == "served_model"]
    assert (finding.recorded, finding.live) == ("gpt-4o-2024-08-06", "gpt-4o-2024-11-20")
    assert finding.severity is Severity.ERROR and emu.request_count == 1


# -- the command -----------------------------------------------------------------------------
AGENT = '''
import importlib.util, sys
spec = importlib.util.spec_from_file_location("drift_tests", {path!r})
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
mod.chat_agent(sys.argv[1], system=sys.argv[2])
'''


def test_cli_drift_replays_a_program(emulator: Callable[..., Emulator], tmp_path: Path) -> None:
    emu = emulator(Turn(text="Rome is lovely.", repeat=True))
    script = tmp_path / "agent.py"
    script.write_text(AGENT.format(path=__file__))
    path = str(tmp_path / "cli.replay")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cli = [sys.executable, "-m", "replay._cli"]
    agent = ["python", str(script), emu.openai_base_url]
    rec = subprocess.run([*cli, "record", "-o", path, "--", *agent, SYSTEM],
                         capture_output=True, text=True, env=env, timeout=120)
    assert rec.returncode == 0, rec.stderr
    same = subprocess.run([*cli, "drift", path, "--", *agent, SYSTEM],
                          capture_output=True, text=True, env=env, timeout=120)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "(agent replayed)" in same.stdout
    edited = subprocess.run([*cli, "drift", path, "--json", "--", *agent,
                             "You plan trips.\nAnswer in French."],
                            capture_output=True, text=True, env=env, timeout=120)
    assert edited.returncode == 1, edited.stderr
    doc = json.loads(edited.stdout)
    assert doc["schema"] == "agent-replay/drift/1" and doc["replayed"] is True
    prompts = [f for f in doc["findings"] if f["kind"] == "system_prompt"]
    assert len(prompts) == 2 and "+Answer in French." in prompts[0]["detail"]
    lax = subprocess.run([*cli, "drift", "--fail-on", "error", path, "--", *agent, "Edited."],
                         capture_output=True, text=True, env=env, timeout=120)
    assert lax.returncode == 0 and "WARNING" in lax.stdout, lax.stdout + lax.stderr
    missing = subprocess.run([*cli, "drift", str(tmp_path / "nope.replay")],
                             capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode == 2
