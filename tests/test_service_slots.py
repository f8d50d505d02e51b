"""A service's journal slots and header template (issue 17): one run's bytes never reach
another's cassette, a killed process keeps its in-flight run's acknowledged events,
dropped runs leave nothing, and the header a template encodes is the header
``encode_header`` writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import msgpack
import pytest

import replay
from replay._cassette import read_header
from replay._cassette.layout import Header
from replay._cassette.redact import DEFAULT, Redactor
from replay._cassette.slots import HeaderTemplate, SlotPool, encode_header
from replay._runs.headers import header_base
from replay._runs.store import RunStatus, open_store
from replay._service.recorder import Recorder

ROOT = Path(__file__).resolve().parent.parent


def _partials(root: Path) -> list[Path]:
    return sorted(root.rglob("*.replay.partial"))


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def _header_map(section: bytes) -> Any:
    return msgpack.unpackb(section[14:-4], raw=False, strict_map_key=False)


def test_a_slot_reused_by_a_shorter_run_holds_only_that_runs_records(tmp_path: Path) -> None:
    root = tmp_path / "store"
    rec = Recorder(str(root), keep="failed", service=True)
    try:
        long_run = rec.begin("long", {})
        assert long_run is not None
        secrets_of_a = [str(uuid.uuid4()) for _ in range(40)]  # recorded, then dropped
        assert rec.end(long_run) is None
        short = rec.begin("short", {})
        assert short is not None and short.journal is long_run.journal  # the same slot
        mine = str(uuid.uuid4())
        commit = rec.end(short, RuntimeError("kept"))
        assert commit is not None
        row = commit()
    finally:
        rec.close()
    assert row is not None
    path = open_store(str(root)).fetch(row.id)
    events = replay.read_cassette(path).events  # strict: whole, with its end record
    assert [str(e.response) for e in events] == [mine]
    everything = _all_bytes(root)
    assert not any(u.encode() in everything for u in secrets_of_a)
    assert _partials(root) == []  # the free slot deleted by close()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_killed_run_in_a_reused_slot_keeps_its_events_and_none_of_the_dropped_ones(
        tmp_path: Path) -> None:
    root = tmp_path / "store"
    code = textwrap.dedent(f"""
        import time, uuid
        from replay._service.recorder import Recorder
        rec = Recorder({str(root)!r}, keep="failed", service=True)
        for i in range(3):  # dropped runs, long ones, in the slot the next run reuses
            active = rec.begin("GET /dropped", {{}})
            for _ in range(30):
                print("dropped", uuid.uuid4(), flush=True)
            rec.end(active)
        active = rec.begin("POST /ask", {{}})
        print("kept", uuid.uuid4(), flush=True)
        print("kept", time.time(), flush=True)
        print("ready", flush=True)
        time.sleep(60)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=env)
    assert proc.stdout is not None
    lines: list[str] = []
    while (line := proc.stdout.readline().strip()) != "ready":
        assert line, "the child ended early"
        lines.append(line)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    dropped = [x.split()[1] for x in lines if x.startswith("dropped")]
    kept = [x.split()[1] for x in lines if x.startswith("kept")]
    [slot] = _partials(root)  # one slot for all four runs
    assert not any(u.encode() in slot.read_bytes() for u in dropped)
    store = Recorder(str(root), keep="failed", service=True).store  # recovers the leftover
    [row] = store.query()
    assert row.status is RunStatus.CRASHED and row.entry == "POST /ask"
    events = replay.read_cassette(store.fetch(row.id), strict=False).events
    assert [e.channel for e in events] == ["uuid", "clock"]
    assert str(events[0].response) == kept[0]
    assert repr(events[1].response) == kept[1]


def test_a_slot_pool_reuses_emptied_slots_and_deletes_the_free_ones(tmp_path: Path) -> None:
    pool = SlotPool()
    a = pool.take(str(tmp_path))
    b = pool.take(str(tmp_path))
    assert a.path != b.path
    a.begin(b"run a's bytes")
    os.write(a.fd, b" and more")
    a.empty()
    pool.give(a)
    assert pool.take(str(tmp_path)) is a and os.path.getsize(a.path) == 0
    a.begin(b"next")  # appended at the start again: no hole, no old bytes
    assert Path(a.path).read_bytes() == b"next"
    a.empty()
    pool.give(a)
    pool.close()
    assert not os.path.exists(a.path) and os.path.exists(b.path)  # b is still in use
    b.close()


def _merged(base: Header, created: str, meta: dict[str, Any], red: Redactor) -> Header:
    return Header(created, base.argv, base.python, base.platform,
                  {**base.meta, **red.meta(meta)})


@pytest.mark.parametrize("meta", [
    {"entry": {"kind": "asgi", "ref": "app:app", "body": b'{"q": "hi"}',
               "scope": {"headers": [["host", "x"], ["content-type", "application/json"]]}},
     "run": {"id": "20261203-114500-1a2b3c4d", "start": 1.5, "tags": ["t"], "attrs": {}}},
    {"entry": {"kind": "asgi", "ref": "app:app", "body": b'{"key": "sk-proj-' + b"a" * 40 + b'"}',
               "scope": {"headers": [["authorization", "Bearer sk-" + "b" * 40],
                                     ["x-api-key", "plain"]]}},
     "run": {"id": "x", "attrs": {"path": "/ask?api_key=s3cr3t"}}},
    {"capture": 99, "entry": {}},  # a key the constant part has too: the run's wins
])
def test_a_header_template_encodes_the_header_encode_header_writes(meta: dict[str, Any]) -> None:
    base = header_base(DEFAULT)
    template = HeaderTemplate(base, DEFAULT)
    created = "2026-12-03T11:45:00.123456Z"
    got = template.encode(created, meta)
    want = encode_header(_merged(base, created, meta, DEFAULT))
    assert _header_map(got) == _header_map(want)
    assert list(_header_map(got)["meta"]) == list(_header_map(want)["meta"])  # key order too
    for secret in (b"sk-proj-" + b"a" * 40, b"sk-" + b"b" * 40, b"plain", b"s3cr3t"):
        assert secret not in got


def test_a_template_header_is_read_back_as_a_header(tmp_path: Path) -> None:
    red = Redactor.with_patterns([r"tok-[0-9]+"])  # extra patterns: the walk, not the scan
    template = HeaderTemplate(header_base(red), red)
    section = template.encode("2026-12-03T11:45:00.000000Z", {"run": {"note": "tok-123"}})
    path = tmp_path / "h.replay"
    path.write_bytes(section)
    header = read_header(path)
    assert header.created == "2026-12-03T11:45:00.000000Z"
    run = header.meta["run"]
    assert isinstance(run, dict) and "tok-123" not in str(run["note"])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_neither_takes_nor_deletes_its_parents_slots(tmp_path: Path) -> None:
    pool = SlotPool()
    slot = pool.take(str(tmp_path))
    pool.give(slot)
    pid = os.fork()
    if pid == 0:  # the child: its own slot, then close the pool
        try:
            mine = pool.take(str(tmp_path))
            ok = mine is not slot and mine.path != slot.path
            pool.give(mine)
            pool.close()
            os._exit(0 if ok and not os.path.exists(mine.path) else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert os.path.exists(slot.path) and pool.take(str(tmp_path)) is slot
    slot.begin(b"still ours")  # its descriptor is open in the parent
    assert Path(slot.path).read_bytes() == b"still ours"
    slot.empty()
    pool.give(slot)
    pool.close()
    assert not os.path.exists(slot.path)


def test_a_run_that_fails_to_start_leaves_its_slot_empty_for_the_next(tmp_path: Path) -> None:
    from replay._capture.session import SESSION_HOOKS
    from replay._cassette.errors import SessionError

    def refuse(session: Any, run: Any) -> None:  # after the run's header was written
        raise SessionError("refused by a session hook")

    root = tmp_path / "store"
    rec = Recorder(str(root), keep="failed", service=True)
    SESSION_HOOKS.append(refuse)
    try:
        assert rec.begin("refused", {"note": "refused-run"}) is None  # runs unrecorded
    finally:
        SESSION_HOOKS.remove(refuse)
    try:
        [slot] = _partials(root)
        assert slot.stat().st_size == 0
        active = rec.begin("next", {})
        assert active is not None and active.journal is not None
        assert active.journal.path == str(slot)  # the same slot, taken again
        mine = str(uuid.uuid4())
        commit = rec.end(active, RuntimeError("kept"))
        assert commit is not None
        row = commit()
    finally:
        rec.close()
    assert row is not None
    path = open_store(str(root)).fetch(row.id)
    assert b"refused-run" not in Path(path).read_bytes()
    assert [str(e.response) for e in replay.read_cassette(path).events] == [mine]
