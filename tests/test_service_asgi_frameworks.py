"""The ASGI middleware on frameworks and servers the FastAPI/uvicorn tests do not
use: a Litestar app on uvicorn (``DefineMiddleware``, a lifespan putting the
client on ``app.state``, ``Provide`` dependencies, an ``asyncio.TaskGroup``, a
background task, a ``Stream``), a plain Starlette app on hypercorn (a
lifespan yielding state, ``BackgroundTasks``, a ``StreamingResponse``) and on
uvicorn with uvloop, imported as a top-level ``starlette_app`` module, and a
Quart app on hypercorn (``app.asgi_app`` wrapped, ``before_serving``, a
streamed generator), all with keep="failed" under concurrent requests. The
failed runs are found with ``replay ls --failed``, carry their route template,
and each replays alone and four at once, in-process and with ``replay play ID``,
to the bytes the client got live."""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

import replay
from fixtures.emulator import Emulator, Turn
from replay._runs.entry import Response
from replay._runs.store import RunRow, RunStatus, open_store
from replay._service.asgi import CUT_OFF
from tests._servers import Server

ROOT = Path(__file__).resolve().parent.parent


def _command(app: str, server: str) -> list[str]:
    """``server`` serving ``app``: a module of fixtures/service, or with ``top:`` the
    same file imported as a top-level module (``uvicorn starlette_app:app`` run in
    that folder, as a user's service is)."""
    if app.startswith("top:"):
        target, where = f"{app[4:]}:app", ["--app-dir", "fixtures/service"]
    else:
        target, where = f"fixtures.service.{app}:app", []
    if server == "hypercorn":
        return [sys.executable, "-m", "hypercorn", "-b", "127.0.0.1:{port}", target]
    loop = ["--loop", "uvloop"] if server == "uvicorn-uvloop" else []
    return [sys.executable, "-m", "uvicorn", *where, target, "--host", "127.0.0.1",
            "--port", "{port}", "--log-level", "warning", *loop]


REQUESTS: list[tuple[str, str]] = [
    ("/ask/ada", "plan a trip, raise"),
    ("/ask/bob", "plan a trip, http"),     # 503
    ("/ask/cy", "plan a trip, flag"),
    ("/ask/di", "plan a trip"),            # ok: dropped
    ("/stream", "stream it, flag"),
    ("/stream", "stream it"),              # ok: dropped
    ("/ask/ed", "again, raise"),
]
KEPT = (0, 1, 2, 4, 6)
CASES = {  # app module, server, the packages they need, the route template
    "litestar-uvicorn": ("litestar_app", "uvicorn", ("litestar",), "/ask/{user}"),
    "starlette-hypercorn": ("starlette_app", "hypercorn", ("hypercorn",), "/ask/{user}"),
    # uvicorn[standard]'s loop (its tasks are made by uvloop's create_task), and a
    # module named like a framework (`starlette_app`, found as the app's home)
    "starlette-uvicorn-uvloop": ("top:starlette_app", "uvicorn-uvloop", ("uvloop",),
                                 "/ask/{user}"),
    # Quart wraps its app.asgi_app; the route is named in request.scope["replay.route"]
    "quart-hypercorn": ("quart_app", "hypercorn", ("quart", "hypercorn"), "/ask/<user>"),
}


def _replayed(row: RunRow) -> tuple[Any, ...]:
    run = replay.play(row.id, unused="fail")
    try:
        got = run.invoke()
    except RuntimeError as exc:  # the handler's own exception, raised again
        assert run.result is not None and run.result.ok
        return ("raised", str(exc))
    assert isinstance(got, Response) and run.result is not None and run.result.ok
    return (got.status, got.body)


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_asgi_framework_keeps_its_failed_requests_and_each_replays_exactly(
        case: str, tmp_path: Path, emulator: Callable[..., Emulator],
        serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch) -> None:
    app, server, needs, route = CASES[case]
    for package in needs:
        pytest.importorskip(package)
    llm = emulator(Turn(text="Pack light.", chunks=["Pack ", "light."], repeat=True))
    store = str(tmp_path / "runs")
    path = os.pathsep.join([str(ROOT), str(ROOT / "fixtures" / "service")])
    env = {**os.environ, "PYTHONPATH": path, "REPLAY_STORE": store,
           "AGENT_LLM_URL": llm.openai_base_url}
    service = serve(_command(app, server), env)
    url = service.url
    try:
        def fire(i: int) -> tuple[int, bytes]:
            path, q = REQUESTS[i]
            r = httpx.post(url + path, json={"q": q}, headers={"x-request-id": f"req-{i}"},
                           timeout=180)
            return (r.status_code, r.content)
        with ThreadPoolExecutor(len(REQUESTS)) as pool:
            live = {f"req-{i}": a for i, a in enumerate(pool.map(fire, range(len(REQUESTS))))}
        assert [live[f"req-{i}"][0] // 100 for i in range(len(REQUESTS))] == [
            5, 5, 2, 2, 2, 2, 5]
        deadline = time.monotonic() + 120
        while len(open_store(store).query()) < len(KEPT) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        service.stop()
    llm.stop()
    for key, value in env.items():
        if key.startswith(("AGENT_", "REPLAY_")):
            monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.syspath_prepend(str(ROOT / "fixtures" / "service"))

    listed = subprocess.run([sys.executable, "-m", "replay._cli", "ls", "--failed", "--json"],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = {r.id: r for r in open_store(store).query()}
    by_request = {rows[f["id"]].attrs["request_id"]: rows[f["id"]]
                  for f in json.loads(listed.stdout)}
    assert sorted(by_request) == sorted(f"req-{i}" for i in KEPT)
    assert all(r.status is RunStatus.FAILED for r in rows.values())
    assert by_request["req-0"].entry == f"POST {route}"
    assert by_request["req-1"].error == "HTTP 503"
    assert by_request["req-4"].attrs["flag"] == "the stream was flagged"

    alone = {rid: _replayed(row) for rid, row in by_request.items()}
    for rid, got in alone.items():
        if got[0] == "raised":  # the server answered 500 for it
            assert live[rid][0] == 500 and got[1] in (by_request[rid].error or "")
        else:
            assert got == live[rid], rid
    order = list(by_request.items())
    random.Random(3).shuffle(order)
    with ThreadPoolExecutor(4) as pool:
        together = dict(zip([rid for rid, _ in order],
                            pool.map(_replayed, [row for _, row in order]), strict=True))
    assert together == alone

    out = subprocess.run([sys.executable, "-m", "replay._cli", "play", by_request["req-4"].id],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == live["req-4"][1].decode()
    assert "0 divergence(s)" in out.stderr


def test_an_answer_the_app_leaves_unfinished_is_kept_as_failed_and_replays_cut_off(
        tmp_path: Path, emulator: Callable[..., Emulator], serve: Callable[..., Server],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An app that swallows the error of a streamed answer and returns (Sanic does)
    raises nothing and answered 200, yet its client got a cut-off body: the run is
    failed, kept, and replays to the bytes that were sent."""
    llm = emulator(Turn(text="Pack light.", chunks=["Pack ", "light."], repeat=True))
    store = str(tmp_path / "runs")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REPLAY_STORE": store,
           "AGENT_LLM_URL": llm.openai_base_url}
    service = serve([sys.executable, "-m", "uvicorn", "fixtures.service.cutasgi:app", "--host",
                     "127.0.0.1", "--port", "{port}", "--log-level", "critical"], env)
    got: dict[str, bytes] = {}
    for q in ("cut it", "whole"):
        parts: list[bytes] = []
        with contextlib.suppress(httpx.RemoteProtocolError), httpx.stream(
                "POST", service.url + "/ask", json={"q": q}, timeout=60,
                headers={"x-request-id": q}) as r:
            parts.extend(r.iter_raw())
        got[q] = b"".join(parts)
    assert got["whole"].endswith(b"end\n") and not got["cut it"].endswith(b"end\n")
    deadline = time.monotonic() + 60
    while not open_store(store).query() and time.monotonic() < deadline:
        time.sleep(0.1)
    service.stop()
    llm.stop()
    monkeypatch.setenv("REPLAY_STORE", store)
    monkeypatch.setenv("AGENT_LLM_URL", env["AGENT_LLM_URL"])
    monkeypatch.syspath_prepend(str(ROOT))
    [row] = open_store(store).query()
    assert row.attrs["request_id"] == "cut it" and row.status is RunStatus.FAILED
    assert row.error == f"flagged: {CUT_OFF}" and row.attrs["http_status"] == "200"
    run = replay.play(row.id, unused="fail")
    answer = run.invoke()
    assert isinstance(answer, Response) and run.result is not None and run.result.ok
    assert (answer.status, answer.body) == (200, got["cut it"])
