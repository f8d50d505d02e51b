"""A service the other tests do not use (fixtures/service/planner.py: Depends,
BackgroundTasks, a threadpool ``def`` endpoint, executor, to_thread and TaskGroup
fan-out, the openai and anthropic SDKs, an SSE stream of both) on uvicorn with
keep="failed", under concurrent requests that raise, answer 5xx or flag. Each
stored run replays alone and in shuffled concurrent groups to the bytes the
client got live, in-process and with ``replay play RUN`` in a fresh process, and
no key, bearer token or cookie reaches the store (acceptance of issue 17)."""

from __future__ import annotations

import asyncio
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
from fixtures.service import planner
from replay._runs.entry import Response
from replay._runs.store import RunRow, RunStatus, open_store
from tests._servers import Server

pytest.importorskip("uvicorn")
ROOT = Path(__file__).resolve().parent.parent
SECRETS = (planner.OPENAI_KEY, planner.ANTHROPIC_KEY, "tok-BEARER0123456789abcdef",
           "COOKIE0123456789abcdef")
CLIENT = {"authorization": f"Bearer {SECRETS[2]}", "cookie": f"sid={SECRETS[3]}"}


REQUESTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/plan/ada", {"q": "plan a trip, raise"}),
    ("POST", "/plan/bob", {"q": "plan a trip, bad"}),
    ("POST", "/plan/cy", {"q": "plan a trip, flag"}),
    ("POST", "/plan/di", {"q": "plan a trip, http"}),
    ("POST", "/plan/ed", {"q": "plan a trip"}),  # ok: dropped
    ("GET", "/sync/1", None),  # raises in the threadpool
    ("GET", "/sync/2", None),  # 502
    ("POST", "/sse", {"q": "stream it, flag"}),
    ("POST", "/sse", {"q": "stream it"}),  # ok: dropped
    ("POST", "/plan/fay", {"q": "again, raise"}),
]


async def _fire(url: str) -> dict[str, tuple[int, bytes]]:
    async with httpx.AsyncClient(timeout=180) as client:
        answers = await asyncio.gather(*(
            client.request(method, url + path, json=body,
                           headers={**CLIENT, "x-request-id": f"req-{i}"})
            for i, (method, path, body) in enumerate(REQUESTS)))
    return {f"req-{i}": (r.status_code, r.content) for i, r in enumerate(answers)}


def _replayed(row: RunRow) -> tuple[Any, ...]:
    run = replay.play(row.id, unused="fail")
    try:
        got = run.invoke()
    except RuntimeError as exc:  # the handler's own exception, raised again
        return ("raised", str(exc))
    assert isinstance(got, Response) and run.result is not None and run.result.ok
    return (got.status, got.body)


def test_a_busy_service_keeps_its_failed_requests_and_each_replays_exactly(
        tmp_path: Path, emulator: Callable[..., Emulator], serve: Callable[..., Server],
        monkeypatch: pytest.MonkeyPatch) -> None:
    llm = emulator(Turn(text="Pack light.", chunks=["Pack ", "light."], repeat=True))
    store = str(tmp_path / "runs")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REPLAY_STORE": store,
           "AGENT_LLM_URL": llm.openai_base_url, "AGENT_ANT_URL": llm.anthropic_base_url}
    service = serve([sys.executable, "-m", "uvicorn", "fixtures.service.planner:app", "--host",
                     "127.0.0.1", "--port", "{port}", "--log-level", "warning"], env, "uvicorn")
    try:
        live = asyncio.run(_fire(service.url))
        assert [live[f"req-{i}"][0] for i in range(len(REQUESTS))] == [
            500, 502, 200, 503, 200, 500, 502, 200, 200, 500]
        deadline = time.monotonic() + 120
        while len(open_store(store).query()) < 8 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        service.stop()
    llm.stop()  # from here on only the store answers
    for key, value in env.items():
        if key.startswith(("AGENT_", "REPLAY_")):
            monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(ROOT))
    rows = open_store(store).query()
    by_request = {r.attrs["request_id"]: r for r in rows}
    assert sorted(by_request) == sorted(f"req-{i}" for i in (0, 1, 2, 3, 5, 6, 7, 9))
    assert all(r.status is RunStatus.FAILED and r.tags == ("planner",) for r in rows)
    assert by_request["req-3"].error == "HTTP 503"
    assert by_request["req-7"].attrs["flag"] == "the stream was flagged"
    assert by_request["req-5"].entry == "GET /sync/{n}"
    assert set(by_request["req-0"].models) == {"gpt-4o-mini", "claude-3-5-haiku-latest"}
    assert set(by_request["req-0"].tools) == {"weather", "stock"}

    alone = {rid: _replayed(row) for rid, row in by_request.items()}
    for rid, got in alone.items():
        status, body = live[rid]
        if got[0] == "raised":  # the client saw Starlette's 500 for it
            assert status == 500 and got[1] in by_request[rid].error
        else:
            assert got == (status, body), rid
        assert _replayed(by_request[rid]) == got  # and again, byte for byte
    for seed in (1, 2):  # shuffled, four at once, in threads of this process
        order = list(by_request.items())
        random.Random(seed).shuffle(order)
        with ThreadPoolExecutor(4) as pool:
            together = dict(zip([rid for rid, _ in order],
                                pool.map(_replayed, [row for _, row in order]), strict=True))
        assert together == alone

    for rid in ("req-7", "req-6"):  # a fresh process: the SSE body, the threadpool's 502
        out = subprocess.run([sys.executable, "-m", "replay._cli", "play",
                              by_request[rid].id], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=180)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == live[rid][1].decode()
        assert f"HTTP {live[rid][0]}" in out.stderr and "0 divergence(s)" in out.stderr

    for row in rows:  # nothing secret in a cassette, its header or the index
        path = open_store(store).fetch(row.id)
        cassette = replay.read_cassette(path)
        text = repr(cassette.header) + repr(cassette.events)
        assert not any(s in text for s in SECRETS), row.id
    for f in Path(store).glob("index.sqlite*"):
        assert not any(s.encode() in f.read_bytes() for s in SECRETS)
