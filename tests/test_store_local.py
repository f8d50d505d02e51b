"""The local run store: the SQLite index, queries, references, caps, spools (issue 17)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import replay
from replay._cassette.errors import StoreError
from replay._runs.store import (
    Caps,
    LocalStore,
    Query,
    RunRow,
    RunStatus,
    is_run_ref,
    new_run_id,
    open_store,
    resolve,
    run_id_of,
)
from replay._runs.store.base import Spool

T0 = 1_780_000_000.0


def _cassette(store: LocalStore, run_id: str, pad: int = 0) -> str:
    """A real closed cassette recorded in the store's spool, as a recorder leaves it."""
    path = store.new_run(run_id)
    with replay.record(path, metadata={"pad": "x" * pad}):
        pass
    return path


def _row(run_id: str, start: float, **kw: object) -> RunRow:
    base: dict[str, object] = {"entry": "svc.agent:answer", "duration": 0.5,
                               "status": RunStatus.OK}
    base.update(kw)
    return RunRow(id=run_id, start=start, **base)  # type: ignore[arg-type]


def _fill(store: LocalStore) -> list[RunRow]:
    rows = [
        _row(new_run_id(T0), T0, models=("gpt-4o-mini",), tools=("search",), tags=("prod",),
             input_tokens=10, output_tokens=5, cost=0.001),
        _row(new_run_id(T0 + 60), T0 + 60, status=RunStatus.FAILED, error="ValueError: bad",
             models=("claude-3-5-haiku",), tags=("prod", "eu")),
        _row(new_run_id(T0 + 120), T0 + 120, entry="POST /chat", status=RunStatus.CRASHED,
             tools=("search", "fetch"), attrs={"route": "/chat", "http_status": "500"}),
    ]
    for row in rows:
        store.put(_cassette(store, row.id), row)
    return rows


def test_put_indexes_the_row_and_moves_the_cassette(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "runs"))
    rows = _fill(store)
    assert [r.id for r in store.query()] == [r.id for r in reversed(rows)]
    got = store.get(rows[0].id)
    assert got.models == ("gpt-4o-mini",) and got.tools == ("search",)
    assert got.tokens == 15 and got.cost == 0.001 and got.status is RunStatus.OK
    path = store.fetch(rows[0].id)
    assert path == str(tmp_path / "runs" / f"{rows[0].id}.replay")
    assert got.size == os.path.getsize(path) > 0
    assert replay.read_cassette(path).header.meta["pad"] == ""
    assert store.get(rows[2].id).attrs == {"route": "/chat", "http_status": "500"}
    # the index is a plain SQLite file in WAL mode, readable by any tool
    db = sqlite3.connect(tmp_path / "runs" / "index.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    entry, status, error, models = db.execute(
        "SELECT entry, status, error, models FROM runs WHERE id = ?", (rows[1].id,)).fetchone()
    assert (entry, status, error, models) == ("svc.agent:answer", "failed", "ValueError: bad",
                                              '["claude-3-5-haiku"]')


@pytest.mark.parametrize("query", [
    Query(), Query(failed=True), Query(since=T0 + 30), Query(entry="POST"),
    Query(entry="agent:answer"), Query(model="gpt-4o"), Query(model="claude"),
    Query(model="gpt-5"), Query(tool="search"), Query(tool="fetch"), Query(tags=("prod",)),
    Query(tags=("prod", "eu")), Query(failed=True, tool="search"), Query(limit=2),
])
def test_sql_query_agrees_with_query_matches(tmp_path: Path, query: Query) -> None:
    store = LocalStore(str(tmp_path / "runs"))
    rows = _fill(store)
    assert [r.id for r in store.query(query)] == [r.id for r in query.apply(rows)]


def test_references_last_ids_and_prefixes(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "runs"))
    rows = _fill(store)
    assert store.get("last").id == rows[2].id
    assert store.get("last~2").id == rows[0].id
    assert store.get(rows[1].id[:17]).id == rows[1].id
    with pytest.raises(StoreError, match="holds 3 run"):
        store.get("last~3")
    with pytest.raises(StoreError, match="no run 19990101"):
        store.get("19990101")
    same_second = [new_run_id(T0 + 500) for _ in range(2)]
    for rid in same_second:
        store.put(_cassette(store, rid), _row(rid, T0 + 500))
    with pytest.raises(StoreError, match="several runs"):
        store.get(same_second[0][:15])
    assert is_run_ref("last") and is_run_ref("last~4") and is_run_ref(rows[0].id[:8])
    assert not is_run_ref("run.replay") and not is_run_ref("lastrun")


def test_resolve_keeps_paths_and_fetches_references(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = LocalStore(".replay/runs")
    rows = _fill(store)
    assert resolve("last") == store.fetch(rows[2].id)
    assert resolve("other.replay") == "other.replay"  # not a reference: left to preflight
    Path("last").write_bytes(b"x")  # a file of that name wins
    assert resolve("last") == "last"
    monkeypatch.setenv("REPLAY_STORE", str(tmp_path / "elsewhere"))
    with pytest.raises(StoreError, match="no run store"):
        resolve(rows[0].id)


def test_caps_evict_the_oldest_runs(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "runs"), caps=Caps(max_runs=2))
    rows = _fill(store)
    assert [r.id for r in store.query()] == [rows[2].id, rows[1].id]
    assert not os.path.exists(tmp_path / "runs" / f"{rows[0].id}.replay")

    big = LocalStore(str(tmp_path / "big"))
    ids = [new_run_id(T0 + i) for i in range(4)]
    for i, rid in enumerate(ids):
        big.put(_cassette(big, rid, pad=2000), _row(rid, T0 + i))
    sizes = [r.size for r in big.query()]
    capped = LocalStore(str(tmp_path / "big"), caps=Caps(max_bytes=sum(sizes[:2]) + 10))
    assert capped.evict() == ids[:2]
    assert [r.id for r in capped.query()] == ids[:1:-1]
    assert sorted(os.listdir(tmp_path / "big")) == sorted(
        [".spool", "index.sqlite", "index.sqlite-shm", "index.sqlite-wal",
         *(f"{rid}.replay" for rid in ids[2:])])


def test_discard_is_one_delete(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "runs"))
    path = _cassette(store, new_run_id())
    store.discard(path)
    assert not os.path.exists(path) and store.query() == []


def test_several_processes_write_one_index(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    code = textwrap.dedent(f"""
        import replay
        from replay._runs.store import LocalStore, RunRow, RunStatus, new_run_id
        store = LocalStore({str(root)!r})
        for i in range(15):
            rid = new_run_id()
            path = store.new_run(rid)
            with replay.record(path):
                pass
            store.put(path, RunRow(id=rid, entry="w", start=1.0 + i, duration=0.0,
                                   status=RunStatus.OK))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    store = LocalStore(str(root))
    rows = store.query()
    assert len(rows) == 60 and len({r.id for r in rows}) == 60
    assert all(os.path.isfile(store.fetch(r.id)) for r in rows)


def test_a_killed_writer_leaves_a_partial_that_recover_turns_into_a_run(
        tmp_path: Path) -> None:
    root = tmp_path / "runs"
    code = textwrap.dedent(f"""
        import sys, time, replay
        from replay._runs.store import LocalStore, new_run_id
        store = LocalStore({str(root)!r})
        path = store.new_run(new_run_id())
        run = replay.record(path).start()
        time.time()
        print(path, flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    path = proc.stdout.readline().strip()
    store = LocalStore(str(root))
    assert store.leftovers() == []  # its writer is alive: not a leftover
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert store.leftovers() == [path + ".partial"]

    def summarize(p: str) -> RunRow:
        events = replay.read_cassette(p, strict=False).events
        return _row(run_id_of(p), time.time(), status=RunStatus.CRASHED,
                    error=f"crashed after {len(events)} events")

    [row] = store.recover(summarize)
    assert store.get("last").status is RunStatus.CRASHED
    assert store.get("last").error == "crashed after 1 events"
    assert store.leftovers() == []
    stored = store.fetch(row.id)
    assert replay.read_cassette(stored, strict=False).damage is not None
    assert not Path(stored).read_bytes().endswith(bytes(8))  # the map's zero tail was cut


def test_bad_stores_give_store_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="not a folder"):
        open_store(str(tmp_path / "file"))
    with pytest.raises(StoreError, match="no run store backend for ftp"):
        open_store("ftp://host/x")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "index.sqlite").write_bytes(b"garbage" * 100)
    with pytest.raises(StoreError, match="cannot open the run index"):
        LocalStore(str(tmp_path / "bad")).query()
    with pytest.raises(StoreError, match="not a run id"):
        LocalStore(str(tmp_path / "ok")).fetch("../../etc/passwd")


def test_a_spool_is_made_once_per_process_and_never_taken_while_being_made(
        tmp_path: Path) -> None:
    """Threads asking at once share one spool folder; a folder another process is
    still making (hidden, its lock not yet taken) is not an ended process's spool."""
    making = tmp_path / ".making-abc123"
    making.mkdir(parents=True)  # another process, between mkdtemp and its lock
    spool = Spool(str(tmp_path))
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(spool.folder)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1 and os.path.isfile(os.path.join(got[0], ".lock"))
    assert sorted(os.listdir(tmp_path)) == [".making-abc123", os.path.basename(got[0])]
    assert Spool(str(tmp_path)).leftovers() == []  # ours is locked, the other is being made
    assert making.is_dir() and os.path.isdir(got[0])


def test_a_stored_run_is_durable_in_the_store_folder_before_it_is_listed(
        tmp_path: Path) -> None:
    """put() renames the cassette out of the spool, then fsyncs the store's folder (an
    open of the folder, seen by an audit hook), then adds the index row."""
    code = textwrap.dedent(f"""
        import os, sys
        import replay
        from replay._runs.store import LocalStore, RunRow, RunStatus, new_run_id
        store = LocalStore({str(tmp_path / "runs")!r})
        run_id = new_run_id(1_780_000_000.0)
        path = store.new_run(run_id)
        with replay.record(path):
            pass
        seen = []
        sys.addaudithook(lambda ev, args: seen.append((ev, args[0])) if ev in (
            "open", "os.rename", "os.replace", "sqlite3.connect") else None)
        store.put(path, RunRow(id=run_id, start=1_780_000_000.0, entry="e", duration=0.1,
                               status=RunStatus.OK))
        folder = os.path.abspath(store.root)
        events = [(ev, str(a)) for ev, a in seen]
        moved = next(i for i, (ev, _) in enumerate(events) if ev in ("os.rename", "os.replace"))
        synced = next(i for i, e in enumerate(events) if e == ("open", folder))
        print("ORDER", moved < synced, [r.id for r in store.query()] == [run_id])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert "ORDER True True" in out, out
