"""A service's per-run path (issue 17): the patches held by the recorder, a dropped run
never packed, a kept run packed off the request's path, a killed process's run
recovered."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

import replay
from replay._capture import patch as _patch
from replay._capture.session import open_sessions
from replay._runs.store import RunStatus, open_store
from replay._service.recorder import Recorder

ROOT = Path(__file__).resolve().parent.parent

_OPENED: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and args and isinstance(args[0], str) and "lean-" in args[0]:
        _OPENED.append(args[0])


sys.addaudithook(_audit)  # audit hooks cannot be removed; it only notes this test's files


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.name != ".lock")


def _reads() -> tuple[float, str]:
    return time.time(), str(uuid.uuid4())


def _run(rec: Recorder, *, fail: bool = False) -> tuple[Any, Any]:
    """One run reading the clock and a uuid; (its end's commit step, what it read)."""
    active = rec.begin("lean", {})
    assert active is not None
    seen = _reads()
    commit = rec.end(active, RuntimeError("boom") if fail else None)
    return commit, seen


def test_a_service_recorder_keeps_the_patches_between_runs_until_it_closes(
        tmp_path: Path) -> None:
    assert not _patch.installed()
    rec = Recorder(str(tmp_path / "lean-store"), keep="all", service=True)
    for _ in range(3):
        commit, _seen = _run(rec)
        assert commit is not None and commit() is not None
        assert open_sessions() == () and _patch.installed()  # no run open, still in place
        assert isinstance(time.time(), float)  # outside every run: passes through
    rec.close()
    assert not _patch.installed()
    commit, _seen = _run(rec)  # usable again: installs them again
    assert commit is not None and commit() is not None
    assert _patch.installed()
    rec.close()
    rec.close()  # idempotent
    assert not _patch.installed()
    assert len(open_store(str(tmp_path / "lean-store")).query()) == 4


def test_a_decorated_functions_recorder_installs_the_patches_per_call(tmp_path: Path) -> None:
    rec = Recorder(str(tmp_path / "lean-store"), keep="all")
    commit, _seen = _run(rec)
    assert commit is not None and commit() is not None
    assert not _patch.installed()


def test_the_middleware_gives_the_patches_back_at_lifespan_shutdown(tmp_path: Path) -> None:
    app = FastAPI()
    app.add_middleware(replay.RecordingMiddleware, store=str(tmp_path / "lean-store"))

    @app.get("/now")
    def now() -> JSONResponse:
        return JSONResponse({"t": time.time()})

    async def main() -> None:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}},
                                           inbox.get, send))
        await inbox.put({"type": "lifespan.startup"})
        while not sent:
            await asyncio.sleep(0.01)
        assert sent[-1]["type"] == "lifespan.startup.complete"

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        answer: list[dict[str, Any]] = []

        async def send_http(message: dict[str, Any]) -> None:
            answer.append(message)

        await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                   "method": "GET", "path": "/now", "raw_path": b"/now",
                   "query_string": b"", "headers": [(b"host", b"t")], "scheme": "http",
                   "server": ("t", 80), "client": ("127.0.0.1", 1), "root_path": "",
                   "app": app}, receive, send_http)
        assert answer[0]["status"] == 200
        assert _patch.installed() and open_sessions() == ()
        await inbox.put({"type": "lifespan.shutdown"})
        await lifespan
        assert sent[-1]["type"] == "lifespan.shutdown.complete"

    asyncio.run(main())
    assert not _patch.installed()
    [row] = open_store(str(tmp_path / "lean-store")).query()
    assert row.entry == "GET /now" and row.attrs["http_status"] == "200"


def test_a_dropped_run_leaves_no_data_and_is_never_packed(tmp_path: Path) -> None:
    root = tmp_path / "lean-drop"
    rec = Recorder(str(root), keep="failed", service=True)
    _OPENED.clear()
    for _ in range(3):
        commit, _seen = _run(rec)
        assert commit is None
        # what is left is the emptied journal slot the next run reuses
        [slot] = _files(root)
        assert slot.endswith(".replay.partial") and (root / slot).stat().st_size == 0
    # the slot was opened once, by the first run, and kept open for the others;
    # nothing else was opened: no packing, no index, no cassette
    opened = [p for p in _OPENED if not p.endswith(os.sep + ".lock")]
    assert len(opened) == 1, opened
    assert opened[0].endswith(".replay.partial")
    rec.close()
    assert _files(root) == []  # closed: the free slot is deleted too


def test_a_kept_run_is_packed_in_a_worker_thread_then_complete_and_replayable(
        tmp_path: Path) -> None:
    root = tmp_path / "lean-keep"
    rec = Recorder(str(root), keep="failed", service=True)
    try:
        commit, (t, u) = _run(rec, fail=True)
        assert commit is not None
        # Ended, not yet packed: a complete journal in the spool, nothing stored.
        [partial] = [f for f in _files(root) if f.endswith(".partial")]
        assert replay.read_cassette(root / partial, strict=False).damage is None
        rows: list[Any] = []
        worker = threading.Thread(target=lambda: rows.append(commit()))
        worker.start()
        worker.join()
    finally:
        rec.close()
    [row] = rows
    assert row.status is RunStatus.FAILED and row.error == "RuntimeError: boom"
    path = open_store(str(root)).fetch(row.id)
    # packed from the journal slot, which was emptied, freed, and deleted by close()
    assert not [f for f in _files(root) if f.endswith((".partial", ".packing"))]
    cassette = replay.read_cassette(path)  # strict: complete, with its end record
    assert [e.channel for e in cassette.events] == ["clock", "uuid"]
    with replay.play(path):
        assert _reads() == (t, u)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_process_killed_mid_request_leaves_a_run_the_next_one_recovers(
        tmp_path: Path) -> None:
    root = tmp_path / "lean-crash"
    code = textwrap.dedent(f"""
        import contextvars, time, uuid
        from replay._service.recorder import Recorder
        rec = Recorder({str(root)!r}, keep="failed", service=True)
        active = rec.begin("POST /ask", {{}})
        time.time()

        def other():  # a run beside it, dropped: its journal slot is left empty
            rec.end(rec.begin("GET /other", {{}}))
        contextvars.Context().run(other)
        print(uuid.uuid4(), flush=True)
        time.sleep(60)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=env)
    assert proc.stdout is not None
    printed = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    slots = sorted((root / f).stat().st_size for f in _files(root)
                   if f.endswith(".replay.partial"))
    assert len(slots) == 2 and slots[0] == 0 and slots[1] > 0  # a free slot, the killed run
    rec = Recorder(str(root), keep="failed", service=True)
    store = rec.store  # opening it takes in the crashed writer's leftover
    [row] = store.query()
    assert row.status is RunStatus.CRASHED and row.entry == "POST /ask"
    events = replay.read_cassette(store.fetch(row.id), strict=False).events
    assert [e.channel for e in events] == ["clock", "uuid"]
    assert str(events[1].response) == printed or printed in repr(events[1].response)
    assert not [f for f in _files(root) if f.endswith(".partial")]
