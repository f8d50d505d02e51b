"""The WSGI middleware on a real Flask app (fixtures/service/flaskapp.py) served on
127.0.0.1 by waitress and by werkzeug's threaded server, calling the LLM
emulator through the openai SDK, with keep="failed": concurrent requests that
raise, abort with 503, flag, or stream (and break off mid-stream). The failed
ones are found with ``replay ls --failed`` and each replays, alone and four at
once in threads, in-process and with ``replay play ID`` in a fresh process, to
the bytes the client got live."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest

import replay
from fixtures.emulator import Emulator, Turn
from replay._runs.entry import Response
from replay._runs.store import RunRow, RunStatus, open_store
from tests._servers import Server

pytest.importorskip("flask")
ROOT = Path(__file__).resolve().parent.parent
BEARER = "tok-BEARER0123456789abcdef"


def _command(server: str) -> list[str]:
    if server == "waitress":
        return [sys.executable, "-m", "waitress", "--threads=8", "--listen=127.0.0.1:{port}",
                "fixtures.service.flaskapp:app"]
    # werkzeug's development server, a thread per request
    return [sys.executable, "-m", "flask", "--app", "fixtures.service.flaskapp", "run",
            "--with-threads", "--host", "127.0.0.1", "--port", "{port}"]


REQUESTS: list[tuple[str, str]] = [
    ("/ask/ada", "plan a trip, raise"),    # Flask answers 500
    ("/ask/bob", "plan a trip, http"),     # abort(503)
    ("/ask/cy", "plan a trip, flag"),      # 200, flagged
    ("/ask/di", "plan a trip"),            # ok: dropped
    ("/stream", "stream it, flag"),        # 200, streamed, flagged
    ("/stream", "stream it"),              # ok: dropped
    ("/stream", "stream it, raise"),       # breaks off mid-stream
    ("/ask/ed", "again, raise"),
]
KEPT = (0, 1, 2, 4, 6, 7)


def _fire(url: str, i: int) -> tuple[Any, ...]:
    path, q = REQUESTS[i]
    try:
        r = httpx.post(url + path, json={"q": q}, timeout=180,
                       headers={"x-request-id": f"req-{i}", "authorization": f"Bearer {BEARER}"})
    except httpx.RemoteProtocolError:  # the server cut the broken stream off
        return ("cut",)
    return (r.status_code, r.content)


def _replayed(row: RunRow) -> tuple[Any, ...]:
    run = replay.play(row.id, unused="fail")
    try:
        got = run.invoke()
    except RuntimeError as exc:  # raised while the answer was iterated
        assert run.result is not None and run.result.ok
        return ("raised", str(exc))
    assert isinstance(got, Response) and run.result is not None and run.result.ok
    return (got.status, got.body)


@pytest.mark.parametrize("server", ["waitress", "werkzeug"])
def test_a_flask_service_keeps_its_failed_requests_and_each_replays_exactly(
        server: str, tmp_path: Path, emulator: Callable[..., Emulator],
        serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip(server)
    llm = emulator(Turn(text="Pack light.", chunks=["Pack ", "light."], repeat=True))
    store = str(tmp_path / "runs")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REPLAY_STORE": store,
           "AGENT_LLM_URL": llm.openai_base_url, "AGENT_KEEP": "failed"}
    service = serve(_command(server), env)
    url = service.url
    try:
        with ThreadPoolExecutor(len(REQUESTS)) as pool:
            answers = list(pool.map(lambda i: _fire(url, i), range(len(REQUESTS))))
        live = {f"req-{i}": a for i, a in enumerate(answers)}
        assert [a[0] for a in answers] == [500, 503, 200, 200, 200, 200, "cut", 500]
        deadline = time.monotonic() + 120
        while len(open_store(store).query()) < len(KEPT) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        service.stop()
    llm.stop()  # from here on only the store answers
    for key, value in env.items():
        if key.startswith(("AGENT_", "REPLAY_")):
            monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(ROOT))

    listed = subprocess.run([sys.executable, "-m", "replay._cli", "ls", "--failed", "--json"],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    failed = json.loads(listed.stdout)
    rows = {r.id: r for r in open_store(store).query()}
    by_request = {rows[f["id"]].attrs["request_id"]: rows[f["id"]] for f in failed}
    assert sorted(by_request) == sorted(f"req-{i}" for i in KEPT)
    assert all(r.status is RunStatus.FAILED and r.tags == ("flask",) for r in rows.values())
    assert by_request["req-0"].entry == "POST /ask/<user>"
    assert by_request["req-0"].error == "HTTP 500"
    assert by_request["req-1"].error == "HTTP 503"
    assert by_request["req-4"].attrs["flag"] == "the stream was flagged"
    assert by_request["req-6"].error == "RuntimeError: the stream broke off"
    assert by_request["req-6"].attrs["http_status"] == "200"  # sent before it broke
    assert by_request["req-2"].models == ("gpt-4o-mini",)
    assert by_request["req-2"].tools == ("weather",)

    alone = {rid: _replayed(row) for rid, row in by_request.items()}
    for rid, got in alone.items():
        if live[rid] == ("cut",):
            assert got == ("raised", "the stream broke off")
        else:
            assert got == live[rid], rid
        assert _replayed(by_request[rid]) == got  # and again
    order = list(by_request.items())
    random.Random(7).shuffle(order)
    with ThreadPoolExecutor(4) as pool:  # four at once: no cross-talk
        together = dict(zip([rid for rid, _ in order],
                            pool.map(_replayed, [row for _, row in order]), strict=True))
    assert together == alone

    for rid in ("req-4", "req-1"):  # a fresh process: the streamed body, the 503
        out = subprocess.run([sys.executable, "-m", "replay._cli", "play",
                              by_request[rid].id], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=180)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == live[rid][1].decode()
        assert f"HTTP {live[rid][0]}" in out.stderr and "0 divergence(s)" in out.stderr
    for row in rows.values():  # the bearer token reached no cassette
        cassette = replay.read_cassette(open_store(store).fetch(row.id))
        assert BEARER not in repr(cassette.header) + repr(cassette.events)


class _Threaded(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_raw_wsgi_app_on_wsgiref_lazy_start_lists_raises_and_threads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fixtures.service import rawwsgi

    monkeypatch.setenv("REPLAY_STORE", str(tmp_path / "runs"))
    server = make_server("127.0.0.1", 0, rawwsgi.app, server_class=_Threaded,
                         handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    asks = ["/lazy?fail=1", "/lazy", "/list?flag=1", "/list", "/boom", "/thread?fail=1",
            "/thread"] * 2
    try:
        with ThreadPoolExecutor(6) as pool:
            live = list(pool.map(lambda p: httpx.post(url + p, content=p.encode(), timeout=60,
                                                      headers={"x-request-id": p}), asks))
    finally:
        server.shutdown()
        server.server_close()
    rawwsgi.app.close()  # waits for the runs being stored
    assert [r.status_code for r in live] == [500, 200, 200, 200, 500, 500, 200] * 2
    rows = open_store(str(tmp_path / "runs")).query()
    assert sorted(r.attrs["request_id"] for r in rows) == sorted(
        ["/lazy?fail=1", "/list?flag=1", "/boom", "/thread?fail=1"] * 2)
    boom = next(r for r in rows if r.attrs["request_id"] == "/boom")
    assert boom.error is not None and boom.error.startswith("KeyError: 'boom ")
    answers: dict[str, set[tuple[int, bytes]]] = {}
    for r in live:
        answers.setdefault(r.request.url.raw_path.decode(), set()).add(
            (r.status_code, r.content))
    for row in rows:
        rid = row.attrs["request_id"]
        run = replay.play(row.id, unused="fail")
        if rid == "/boom":
            with pytest.raises(KeyError, match="boom"):
                run.invoke()
            continue
        got = run.invoke()
        assert (got.status, got.body) in answers[rid], rid
        assert run.result is not None and run.result.ok
