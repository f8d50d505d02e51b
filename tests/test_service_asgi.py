"""The ASGI middleware on a real FastAPI app served by uvicorn on 127.0.0.1, calling
the LLM emulator through the openai SDK: each request a stored run, replayed from
the store alone (issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

import replay
from fixtures.emulator import Emulator, Turn
from replay._runs.entry import Response
from replay._runs.store import Query, RunRow, RunStatus, open_store
from replay._service.recorder import Recorder
from tests._servers import Server

ROOT = Path(__file__).resolve().parent.parent


class Service(Server):
    """``fixtures.service.app`` on uvicorn in a child process."""

    def __init__(self, llm: str, store: str, keep: str,
                 app: str = "fixtures.service.app:app") -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "AGENT_LLM_URL": llm,
               "REPLAY_STORE": store, "AGENT_KEEP": keep}
        super().__init__([sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
                          "--port", "{port}", "--log-level", "warning"], env,
                         Path(f"{store}.log"))

    def ask(self, user: str, question: str, request_id: str | None = None) -> httpx.Response:
        headers = {"x-request-id": request_id} if request_id else {}
        return httpx.post(f"{self.url}/ask/{user}", json={"question": question},
                          headers=headers, timeout=180)



def _rows(root: Path, n: int, query: Query | None = None) -> list[RunRow]:
    """The store's rows once it holds ``n`` (a run is stored after its response is sent)."""
    store = open_store(str(root))
    deadline = time.monotonic() + 120
    while len(rows := store.query(query)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return rows


@pytest.fixture
def service(tmp_path: Path, emulator: Callable[..., Emulator],
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Service]]:
    llm = emulator(Turn(text="Here is your answer.", repeat=True))
    monkeypatch.setenv("AGENT_LLM_URL", llm.openai_base_url)  # the replays read it too
    monkeypatch.setenv("REPLAY_STORE", str(tmp_path / "runs"))
    monkeypatch.syspath_prepend(str(ROOT))
    started: list[Service] = []

    def start(keep: str, app: str = "fixtures.service.app:app") -> Service:
        svc = Service(llm.openai_base_url, str(tmp_path / "runs"), keep, app)
        started.append(svc)
        return svc
    yield start
    for svc in started:
        svc.stop()


def test_each_request_is_a_run_with_route_method_status_and_request_id(
        service: Callable[[str], Service], tmp_path: Path) -> None:
    svc = service("all")
    ok = svc.ask("ada", "what now?", request_id="req-1")
    boom = svc.ask("bob", "boom please", request_id="req-2")
    crash = svc.ask("cy", "crash please")
    flagged = svc.ask("di", "flag this")
    assert (ok.status_code, boom.status_code, crash.status_code, flagged.status_code) == (
        200, 500, 500, 200)
    assert svc.ask("ada", "x").status_code == 200
    assert httpx.get(svc.url + "/health", timeout=180).is_success
    health = _rows(tmp_path / "runs", 2, Query(entry="GET /health"))
    assert len(health) >= 2  # every request is a run under keep=all (startup polls too)
    rows = {r.attrs.get("request_id"): r for r in _rows(tmp_path / "runs", 5, Query(entry="POST"))}
    first = rows["req-1"]
    assert first.entry == "POST /ask/{user}" and first.status is RunStatus.OK
    assert first.attrs["route"] == "/ask/{user}" and first.attrs["method"] == "POST"
    assert first.attrs["path"] == "/ask/ada" and first.attrs["http_status"] == "200"
    assert first.models == ("gpt-4o-mini",) and first.tools == ("lookup",)
    assert first.tags == ("service",) and first.tokens > 0
    assert rows["req-2"].status is RunStatus.FAILED and rows["req-2"].error == "HTTP 500"
    crashed = next(r for r in rows.values() if r.attrs["path"] == "/ask/cy")
    assert crashed.status is RunStatus.FAILED
    assert crashed.error is not None and crashed.error.startswith("RuntimeError: crashed")
    assert crashed.attrs["request_id"] == crashed.id  # no header: the run id
    flag = next(r for r in rows.values() if r.attrs["path"] == "/ask/di")
    assert flag.status is RunStatus.FAILED and flag.attrs["flag"] == "flagged by the handler"


def test_a_stored_request_replays_in_process_from_the_store_alone(
        service: Callable[[str], Service], tmp_path: Path) -> None:
    svc = service("all")
    live = svc.ask("ada", "what now?", request_id="req-9")
    [row] = _rows(tmp_path / "runs", 1, Query(entry="POST"))
    assert row.attrs["request_id"] == "req-9"
    svc.stop()
    for _ in range(2):
        run = replay.play(row.id, unused="fail")
        again = run.invoke()
        assert isinstance(again, Response)
        assert again.status == 200 and again.body == live.content  # same tier, same trace
        assert run.result is not None and run.result.ok


def test_keep_failed_stores_only_failures_and_leaves_no_files(
        service: Callable[[str], Service], tmp_path: Path) -> None:
    svc = service("failed")
    for i in range(4):
        assert svc.ask(f"u{i}", "fine").status_code == 200
    assert svc.ask("z", "boom").status_code == 500
    [row] = _rows(tmp_path / "runs", 1)
    assert row.attrs["path"] == "/ask/z" and row.status is RunStatus.FAILED
    spool = tmp_path / "runs" / ".spool"
    leftovers = [p for p in spool.rglob("*") if p.is_file() and p.name != ".lock"
                 and p.stat().st_size]
    assert leftovers == []  # dropped runs were emptied, not kept half-written
    svc.stop()  # the lifespan's shutdown deletes the emptied journal slots too
    assert [p for p in spool.rglob("*") if p.is_file() and p.name != ".lock"] == []
    cassettes = sorted(p.name for p in (tmp_path / "runs").glob("*.replay"))
    assert cassettes == [f"{row.id}.replay"]


def test_concurrent_requests_are_separate_runs_that_each_replay_alone(
        service: Callable[[str], Service], tmp_path: Path) -> None:
    import asyncio

    svc = service("all")

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=180) as client:
            return list(await asyncio.gather(*(
                client.post(f"{svc.url}/ask/u{i}", json={"question": f"q{i}"},
                            headers={"x-request-id": f"c{i}"}) for i in range(8))))
    answers = {f"c{i}": r for i, r in enumerate(asyncio.run(burst()))}
    assert all(r.status_code == 200 for r in answers.values()), Path(svc.log).read_text()
    rows = _rows(tmp_path / "runs", 8, Query(entry="POST"))
    assert sorted(r.attrs["request_id"] for r in rows) == sorted(answers)
    svc.stop()
    for row in rows:  # no cross-talk: each run holds its own request's events only
        run = replay.play(row.id, unused="fail")
        again = run.invoke()
        assert again.body == answers[row.attrs["request_id"]].content
        assert run.result is not None and run.result.ok


def test_a_request_whose_client_the_lifespan_made_replays_after_the_lifespan_ran(
        service: Callable[..., Service], tmp_path: Path) -> None:
    """The handler uses a client the app's lifespan made (lifespan state, app.state):
    the replay runs the lifespan first, outside the run, as uvicorn did, in process
    and in the child process of ``replay play``, strictly."""
    svc = service("all", "fixtures.service.lifespan_app:app")
    live = httpx.post(f"{svc.url}/ask", json={"question": "hi"}, timeout=180)
    assert live.status_code == 200 and live.json()["starts"] == 1
    [row] = _rows(tmp_path / "runs", 1, Query(entry="POST"))
    svc.stop()
    run = replay.play(row.id, unused="fail")
    again = run.invoke()
    assert isinstance(again, Response)
    assert (again.status, again.body) == (200, live.content)
    assert run.result is not None and run.result.ok
    child = subprocess.run([sys.executable, "-m", "replay._cli", "play", row.id, "--unused",
                            "fail"], capture_output=True, text=True, timeout=300,
                           cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.returncode == 0, child.stderr
    assert "HTTP 200" in child.stderr and live.json()["trace"] in child.stdout


def test_a_streamed_response_whose_body_task_starlette_made_replays(
        service: Callable[..., Service], tmp_path: Path) -> None:
    """Starlette streams the body from a task anyio makes, with no user line on the
    stack: its id must not depend on the server that called the app (uvicorn when
    recorded, the replay when replayed)."""
    svc = service("all", "fixtures.service.lifespan_app:app")
    with httpx.stream("POST", f"{svc.url}/stream", json={"question": "hi"},
                      timeout=180) as live:
        body = live.read()
    assert live.status_code == 200 and body.count(b"data: ") >= 3
    [row] = _rows(tmp_path / "runs", 1, Query(entry="POST"))
    svc.stop()
    for _ in range(2):
        run = replay.play(row.id, unused="fail")
        again = run.invoke()
        assert isinstance(again, Response)
        assert (again.status, again.body) == (200, body)
        assert run.result is not None and run.result.ok


def test_a_server_killed_mid_request_keeps_the_runs_acknowledged_events_only(
        tmp_path: Path, emulator: Callable[..., Emulator]) -> None:
    """SIGKILL while the model call is in flight: the next process recovers the run with
    the tool call that had returned, and nothing of the dropped runs that used the same
    journal slot before it."""
    import signal
    import threading

    llm = emulator(Turn(text="Slow answer.", repeat=True, delay_ms=3000))
    root = tmp_path / "runs"
    svc = Service(llm.openai_base_url, str(root), "failed")
    try:
        dropped = [svc.ask("ann", f"question {i}").json()["trace"] for i in range(2)]
        threading.Thread(target=lambda: _suppressed(svc.ask, "bob", "in flight"),
                         daemon=True).start()
        deadline = time.monotonic() + 60
        while not any(b"tool:lookup" in p.read_bytes() and b"bob" in p.read_bytes()
                      for p in root.rglob("*.replay.partial")):
            assert time.monotonic() < deadline, "the in-flight run's tool event never came"
            time.sleep(0.02)
        svc.proc.send_signal(signal.SIGKILL)
        svc.proc.wait(timeout=30)
    finally:
        if svc.proc.poll() is None:
            svc.stop()
    assert [r.status for r in open_store(str(root)).query()] == []  # both dropped
    leftover = b"".join(p.read_bytes() for p in root.rglob("*.replay.partial"))
    # a trace is the first 12 hex digits of a uuid the run recorded (as 8-4-4-4-12)
    assert not any(t[:8].encode() in leftover for t in dropped)
    store = Recorder(str(root), keep="failed").store  # recovers the leftover
    [row] = store.query()
    assert row.status is RunStatus.CRASHED and row.entry == "POST /ask/bob"
    events = replay.read_cassette(store.fetch(row.id), strict=False).events
    # the tool call (and the random draws made inside it: random.choice of 3 redraws
    # with probability 1/4), not the model call in flight; the SDK's uuid for that
    # call (its idempotency key) is there when the kill came after it was drawn
    at = [e.channel for e in events].index("tool:lookup")
    draws, tool, after = events[:at], events[at], events[at + 1:]
    assert draws and all(e.channel == "random" for e in draws)
    assert [e.channel for e in after] in ([], ["uuid"])
    assert "bob" in repr(tool.request)
    assert b"sk-test-abcdefghijklmnop1234" not in Path(store.fetch(row.id)).read_bytes()


def _suppressed(call: Callable[..., object], *args: object) -> None:
    try:
        call(*args)
    except httpx.HTTPError:  # the server was killed under it
        pass
