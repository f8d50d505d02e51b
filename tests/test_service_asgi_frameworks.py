"""The ASGI middleware on frameworks and servers the FastAPI/uvicorn tests do not
use: a Litestar app on uvicorn (``DefineMiddleware``, a lifespan putting the
client on ``app.state``, ``Provide`` dependencies, an ``asyncio.TaskGroup``, a
background task, a ``Stream``) and a plain Starlette app on hypercorn (a
lifespan yielding state, ``BackgroundTasks``, a ``StreamingResponse``), both
with keep="failed" under concurrent requests. The failed runs are found with
``replay ls --failed``, carry their route template, and each replays alone and
four at once, in-process and with ``replay play ID``, to the bytes the client
got live."""

from __future__ import annotations

import json
import os
import random
import socket
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

ROOT = Path(__file__).resolve().parent.parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(app: str, server: str, env: dict[str, str],
           log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    target = f"fixtures.service.{app}:app"
    if server == "hypercorn":
        cmd = [sys.executable, "-m", "hypercorn", "-b", f"127.0.0.1:{port}", target]
    else:
        cmd = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port",
               str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=log.open("wb"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"{server} did not start")


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
CASES = {  # app module, server, the package both need, the route template
    "litestar-uvicorn": ("litestar_app", "uvicorn", "litestar", "/ask/{user}"),
    "starlette-hypercorn": ("starlette_app", "hypercorn", "hypercorn", "/ask/{user}"),
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
        monkeypatch: pytest.MonkeyPatch) -> None:
    app, server, needs, route = CASES[case]
    pytest.importorskip(needs)
    pytest.importorskip(server)
    llm = emulator(Turn(text="Pack light.", chunks=["Pack ", "light."], repeat=True))
    store = str(tmp_path / "runs")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REPLAY_STORE": store,
           "AGENT_LLM_URL": llm.openai_base_url}
    proc, url = _serve(app, server, env, tmp_path / "server.log")
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
        proc.terminate()
        proc.wait(timeout=60)
    llm.stop()
    for key, value in env.items():
        if key.startswith(("AGENT_", "REPLAY_")):
            monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(ROOT))

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
