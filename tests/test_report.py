"""``replay report``: one self-contained HTML file, loaded in a real headless browser.

Debian's ``chromium`` (installed by ``make chromium``, as root or with sudo) loads
the file from a ``file://`` URL; the tests read the DOM the page's script drew
(``--dump-dom``) and take a screenshot. Without chromium they are skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

import replay
from fixtures.emulator import Emulator, ToolCall, Turn, Usage
from replay._analysis.export.report import write_report
from replay._cassette.events import Event
from replay._cassette.layout import Cassette, Header
from tests._secret_samples import shape_samples

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECRET = shape_samples()["stripe-secret-key"]
HOSTILE = ("</script><script>document.body.dataset.pwned='1'</script>"
           "<img src=x onerror=\"document.body.dataset.pwned='2'\">")

needs_browser = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium: `make chromium` installs Debian's package "
                             "(apt-get install chromium) where it can")


def browser(tmp_path: Path, url: str, *flags: str) -> str:
    """Run headless chromium on ``url``; its standard output (the DOM with --dump-dom)."""
    assert CHROMIUM is not None
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    res = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--window-size=1400,900",
         "--virtual-time-budget=5000", *flags, url],
        capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def record_run(path: Path, emu: Emulator, total: float) -> None:
    client = openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-test", max_retries=0)

    @replay.tool
    def lookup_order(order_id: str) -> dict[str, Any]:
        return {"order_id": order_id, "total": total, "key": SECRET, "note": HOSTILE}

    @replay.tool
    def issue_refund(order_id: str, amount: float) -> str:
        return f"refunded {amount}"

    with replay.record(path, redact=False):
        msgs: list[Any] = [{"role": "system", "content": "You refund orders."},
                           {"role": "user", "content": "Refund order A-1 please"}]
        for _ in range(3):
            answer = client.chat.completions.create(model="gpt-4o", messages=msgs)
            message = answer.choices[0].message
            msgs.append(message.model_dump(exclude_none=True))
            if not message.tool_calls:
                break
            for call in message.tool_calls:
                args = json.loads(call.function.arguments)
                result = (lookup_order(**args) if call.function.name == "lookup_order"
                          else issue_refund(args["order_id"], total))
                msgs.append({"role": "tool", "tool_call_id": call.id,
                             "content": json.dumps(result)})


def turns() -> list[Turn]:
    return [Turn(tool_calls=[ToolCall("lookup_order", {"order_id": "A-1"})],
                 usage=Usage(100, 10)),
            Turn(tool_calls=[ToolCall("issue_refund", {"order_id": "A-1", "amount": 1})],
                 usage=Usage(150, 12)),
            Turn(text="Done: your refund is on its way.", usage=Usage(200, 9))]


def report(tmp_path: Path, *runs: Path) -> Path:
    out = tmp_path / "report.html"
    res = subprocess.run([sys.executable, "-m", "replay._cli", "report",
                          *map(str, runs), "-o", str(out)], capture_output=True, text=True,
                         cwd=ROOT, timeout=180, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"wrote {out}")
    return out


def assert_self_contained(html: str) -> None:
    """No URL the browser would load: no src/href attributes, a CSP that allows nothing."""
    markup = html.split('<script type="application/json"', 1)[0]
    assert not re.findall(r"\b(?:src|href)\s*=", markup), "the page loads something"
    assert "default-src 'none'" in html
    assert SECRET not in html and "sk-test" not in html
    assert "</script><script>document" not in html  # hostile text stays data


@needs_browser
def test_two_runs_diff_highlights_the_first_real_divergence(
        tmp_path: Path, emulator: Callable[..., Emulator]) -> None:
    good, bad = tmp_path / "good.replay", tmp_path / "bad.replay"
    record_run(good, emulator(*turns(), model="gpt-4o-2024-08-06"), 49.9)
    record_run(bad, emulator(*turns(), model="gpt-4o-2024-08-06"), 4990.0)
    out = report(tmp_path, good, bad)
    html = out.read_text()
    assert_self_contained(html)
    dom = browser(tmp_path, out.as_uri() + "#diff", "--dump-dom")
    assert 'data-ready="1"' in dom and "data-pwned" not in dom
    # the first divergence: the lookup_order step, by its tool result (the uuid and
    # clock values before it are noise), highlighted and opened
    first = re.search(r'<div class="pair changed first-divergence" id="pair-(\d+)">(.*?)'
                      r'<div class="pair ', dom, re.S)
    assert first, dom[-3000:]
    block = first.group(2)
    assert "gpt-4o -&gt; lookup_order" in block and "first divergence" in block
    assert "response.total" in block and "49.9" in block and "4990.0" in block
    assert re.search(r'id="first-divergence-summary">first divergence: step pair \d+: '
                     r'#\d+ tool:lookup_order: response changed', dom)
    # the detail pane shows that event of the right run
    assert re.search(r'<h2>right #\d+ tool:lookup_order</h2>', dom)
    shot = tmp_path / "diff.png"
    browser(tmp_path, out.as_uri() + "#diff", f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


@needs_browser
def test_one_run_steps_waterfall_conversation_and_payloads(
        tmp_path: Path, emulator: Callable[..., Emulator]) -> None:
    run = tmp_path / "run.replay"
    record_run(run, emulator(*turns(), model="gpt-4o-2024-08-06"), 49.9)
    out = report(tmp_path, run)
    assert_self_contained(out.read_text())
    steps = browser(tmp_path, out.as_uri() + "#steps", "--dump-dom")
    assert 'data-ready="1"' in steps and "data-pwned" not in steps
    names = re.findall(r'<span class="name">(step \d+: [^<]*)</span>', steps)
    assert names == ["step 0: gpt-4o -&gt; lookup_order (3 events)",
                     "step 1: gpt-4o -&gt; issue_refund (3 events)",
                     "step 2: gpt-4o: answer (2 events)"], names
    assert steps.count('class="bar model"') == 3 and steps.count('class="bar tool"') == 2
    assert steps.count('class="bar step"') == 3
    assert re.search(r'<span class="name">[^<]*lookup_order\(order_id=', steps)
    # tokens and cost per step and running
    assert "110 tok" in steps and "162 tok" in steps and "\u03a3 $" in steps
    conv = browser(tmp_path, out.as_uri() + "#conversation", "--dump-dom")
    assert "Refund order A-1 please" in conv and "Done: your refund is on its way." in conv
    assert "[REDACTED" in conv  # the tool result the model read, redacted
    # payloads: collapsed sections, drawn when opened (the event deep link)
    seq = next(e.seq for e in replay.load(run).events if e.channel == "tool:lookup_order")
    ev = browser(tmp_path, out.as_uri() + f"#event-{seq}", "--dump-dom")
    assert f"<h2>#{seq} tool:lookup_order</h2>" in ev
    assert "<summary>request</summary>" in ev and "<summary>response</summary>" in ev
    assert "<details><summary>response</summary></details>" in ev  # collapsed, not drawn


def synthetic(n_steps: int) -> Cassette:
    """A run of ``n_steps`` model calls (chat completions asking for a tool), each with
    its tool call and 18 clock reads: 20 events a step."""
    events: list[Event] = []
    t = 0
    seq = 0
    for i in range(n_steps):
        call_id = f"call_{i}"
        answer = {"id": f"chatcmpl-{i}", "model": "gpt-4o-2024-08-06", "choices": [{
            "index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": None, "tool_calls": [{
                    "id": call_id, "type": "function", "function": {
                        "name": "lookup", "arguments": json.dumps({"n": i})}}]}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 5}}
        body = {"model": "gpt-4o", "messages": [
            {"role": "system", "content": "You look things up, one at a time, carefully."},
            {"role": "user", "content": f"look up item {i}"}]}
        events.append(Event(seq, "http", {"method": "POST",
                                          "url": "https://api.openai.com/v1/chat/completions",
                                          "headers": [], "body": json.dumps(body).encode()},
                            {"status": 200, "headers": [["content-type", "application/json"]],
                             "body": json.dumps(answer).encode()}, start_ns=t,
                            duration_ns=900_000))
        seq += 1
        t += 1_000_000
        events.append(Event(seq, "tool:lookup", {"args": {"n": i}}, {"item": i, "ok": True},
                            start_ns=t, duration_ns=50_000))
        seq += 1
        for _ in range(18):
            t += 10_000
            events.append(Event(seq, "clock", {"fn": "time.time"}, 1.7e9 + t / 1e9,
                                start_ns=t, duration_ns=1_000))
            seq += 1
    header = Header("2026-01-01T00:00:00.000000Z", ("agent.py",), "CPython 3.11", "Linux")
    return Cassette("synthetic.replay", header, tuple(events))


@needs_browser
def test_a_hundred_thousand_events_stay_usable(tmp_path: Path) -> None:
    cassette = synthetic(5_000)
    assert len(cassette.events) == 100_000
    out = tmp_path / "big.html"
    size = write_report(out, cassette, left_name="big")
    assert size < 60_000_000
    dom = browser(tmp_path, out.as_uri() + "#events", "--dump-dom")
    assert 'data-ready="1"' in dom
    assert "100000 of 100000 events" in dom
    # virtualised: only the rows on screen (and a margin) exist
    rows = dom.count('class="vrow') + dom.count(' vrow"')
    assert 10 < rows < 200, rows
    steps = browser(tmp_path, out.as_uri() + "#steps", "--dump-dom")
    assert "5000 steps, 100000 events" in steps
    assert "step 4999: gpt-4o -&gt; lookup" not in steps  # far below: not drawn
    assert steps.count("vrow") < 200
