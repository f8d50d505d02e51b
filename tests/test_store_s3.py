"""The s3:// run store against a real SeaweedFS S3 server (issue 17, item 5).

The server is started by the ``seaweed`` fixture (tests/conftest.py,
fixtures/seaweed.py) on 127.0.0.1; writers are real processes recording real
cassettes with HTTP calls to the LLM emulator.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import replay
from replay._cassette.errors import StoreError
from replay._runs.store import Caps, Query, RunRow, RunStatus, Store, new_run_id, open_store
from replay._runs.store.s3 import S3Store
from tests._s3_writer import API_KEY

pytest.importorskip("boto3")

ROOT = Path(__file__).resolve().parent.parent
WRITER = str(ROOT / "tests" / "_s3_writer.py")
T0 = 1_780_000_000.0


@pytest.fixture(scope="module")
def bucket(seaweed: Any) -> str:
    """One bucket for this module; each test writes under a prefix of its own."""
    name: str = seaweed.make_bucket()
    return name


@pytest.fixture
def url(seaweed: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """``s3://BUCKET/PREFIX`` for this test, with the AWS_* variables pointing at
    the server and the local cache and spool under tmp_path."""
    for key, value in seaweed.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("REPLAY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REPLAY_SPOOL", str(tmp_path / "spool"))
    return f"s3://{bucket}/t-{secrets.token_hex(4)}/runs"


def _record(store: Store, run_id: str, text: str = "") -> str:
    """A real closed cassette in the store's spool."""
    path = store.new_run(run_id)
    with replay.record(path, metadata={"text": text}):
        time.time()
    return path


def _row(run_id: str, start: float, **kw: Any) -> RunRow:
    return RunRow(id=run_id, entry="svc.agent:answer", start=start, duration=0.25,
                  status=kw.pop("status", RunStatus.OK), **kw)


def _writer_env(seaweed: Any, home: Path) -> dict[str, str]:
    env = {**os.environ, **seaweed.env(), "REPLAY_CACHE": str(home / "cache"),
           "REPLAY_SPOOL": str(home / "spool"), "PYTHONPATH": str(ROOT)}
    return env


def test_put_lists_and_pulls_from_another_machine(url: str, tmp_path: Path,
                                                  seaweed: Any, bucket: str) -> None:
    store = open_store(url)
    assert isinstance(store, S3Store)
    rows = [_row(new_run_id(T0 + i), T0 + i, models=("gpt-4o-mini",), tags=("prod",),
                 input_tokens=3, output_tokens=i) for i in range(3)]
    rows[1] = _row(rows[1].id, T0 + 1, status=RunStatus.FAILED, error="ValueError: no")
    originals = {}
    for row in rows:
        path = _record(store, row.id, text=row.id)
        originals[row.id] = Path(path).read_bytes()
        store.put(path, row)
        assert not os.path.exists(path)  # uploaded, then removed locally

    # the layout: a cassette and an index object per run
    prefix = url.split("/", 3)[3]
    keys = set(seaweed.objects(bucket, prefix))
    assert keys == {f"{prefix}/runs/{r.id}.replay" for r in rows} | {
        f"{prefix}/index/{r.id}.json" for r in rows}

    # another machine: an empty cache of its own
    other = S3Store(url, cache_dir=str(tmp_path / "laptop"))
    listed = other.query()
    assert [r.id for r in listed] == [r.id for r in reversed(rows)]
    assert [r.id for r in other.query(Query(failed=True))] == [rows[1].id]
    assert other.get("last").id == rows[2].id and other.get("last~2").id == rows[0].id
    assert other.get(rows[0].id[:-3]).id == rows[0].id
    got = other.get(rows[0].id)
    assert got.models == ("gpt-4o-mini",) and got.tags == ("prod",) and got.tokens == 3
    assert got.size == len(originals[rows[0].id])
    for row in rows:
        dest = other.pull(row.id, str(tmp_path))
        assert Path(dest).read_bytes() == originals[row.id]
        assert replay.read_cassette(dest).header.meta["text"] == row.id
    with pytest.raises(StoreError, match="no run"):
        other.get("19990101-000000-deadbeef")


def test_many_writer_processes_share_one_store(url: str, tmp_path: Path, seaweed: Any,
                                               bucket: str, emulator: Any) -> None:
    from fixtures.emulator import Turn

    emu = emulator(Turn(text="ok", repeat=True))
    writers, runs = 4, 3
    procs = [subprocess.Popen([sys.executable, WRITER, url, str(runs), "ok", emu.url],
                              env=_writer_env(seaweed, tmp_path / f"host{w}"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(writers)]
    stored: list[str] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        stored += [ln.split()[1] for ln in out.splitlines() if ln.startswith("STORED")]
    assert len(stored) == len(set(stored)) == writers * runs

    store = S3Store(url, cache_dir=str(tmp_path / "reader"))
    rows = store.query()
    assert sorted(r.id for r in rows) == sorted(stored)
    assert len({r.attrs["pid"] for r in rows}) == writers
    for row in rows:  # each cassette is its writer's own run, whole
        cassette = replay.read_cassette(store.fetch(row.id))
        assert cassette.header.meta["writer"] == row.attrs["pid"]
        assert any(e.channel == "http" for e in cassette.events)

    # no credential reaches the bucket: AWS keys from the writers' environment,
    # the API key the agent sent
    needles = {"aws access key": seaweed.access_key, "aws secret": seaweed.secret_key,
               "api key": API_KEY}
    prefix = url.split("/", 3)[3]
    for key, body in seaweed.objects(bucket, prefix).items():
        plain = body.decode("latin-1")
        if key.endswith(".replay"):  # and what the cassette decodes to
            p = tmp_path / "scan.replay"
            p.write_bytes(body)
            cassette = replay.read_cassette(p)
            plain += repr(cassette.header) + "".join(repr(e) for e in cassette.events)
            assert "/v1/chat/completions" in plain  # the scan sees the decoded events
        else:
            assert RunRow.from_json(json.loads(body)).id in key
        assert [n for n, v in needles.items() if v in plain] == [], key


def test_a_crashed_writer_is_uploaded_on_the_next_start(url: str, tmp_path: Path,
                                                        seaweed: Any, emulator: Any) -> None:
    from fixtures.emulator import Turn

    emu = emulator(Turn(text="ok", repeat=True))
    env = _writer_env(seaweed, tmp_path / "host")
    proc = subprocess.Popen([sys.executable, WRITER, url, "2", "crash", emu.url], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or not lines[-1].startswith("RECORDING"):
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        lines.append(line)
    crashed_id = lines[-1].split()[1]
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    done_id = lines[0].split()[1]

    # the same host starts again: its spool still holds the dead writer's .partial
    store = S3Store(url, spool_dir=env["REPLAY_SPOOL"], cache_dir=env["REPLAY_CACHE"])
    assert [r.id for r in store.query()] == [done_id]
    leftovers = store.leftovers()
    assert [os.path.basename(p) for p in leftovers] == [f"{crashed_id}.replay.partial"]

    def crashed(path: str) -> RunRow:
        cassette = replay.read_cassette(path, strict=False)
        assert cassette.damage is not None  # no end marker: a torn run
        return _row(crashed_id, time.time(), status=RunStatus.CRASHED,
                    error=f"the process died after {len(cassette.events)} events")

    assert [r.id for r in store.recover(crashed)] == [crashed_id]
    assert store.leftovers() == [] and not os.path.exists(leftovers[0])

    laptop = S3Store(url, cache_dir=str(tmp_path / "laptop"))
    failed = laptop.query(Query(failed=True))
    assert [(r.id, r.status) for r in failed] == [(crashed_id, RunStatus.CRASHED)]
    cassette = replay.read_cassette(laptop.fetch(crashed_id), strict=False)
    assert cassette.damage is not None
    assert [e.channel for e in cassette.events][:1] == ["http"]  # what it did before dying


def test_a_taken_id_gets_a_fresh_one_and_leaves_the_first_run_alone(url: str) -> None:
    store = open_store(url)
    run_id = new_run_id(T0)
    first = _record(store, run_id, text="first")
    store.put(first, _row(run_id, T0))
    second = _record(store, run_id, text="second")
    store.put(second, _row(run_id, T0 + 1))  # another host drew the same id
    rows = store.query()
    assert len(rows) == 2 and len({r.id for r in rows}) == 2
    texts = {r.id: replay.read_cassette(store.fetch(r.id)).header.meta["text"] for r in rows}
    assert texts[run_id] == "first"
    assert sorted(texts.values()) == ["first", "second"]


def test_caps_evict_the_oldest_runs_for_every_reader(url: str, tmp_path: Path) -> None:
    store = S3Store(url, caps=Caps(max_runs=3), evict_every=0)
    ids = [new_run_id(T0 + i) for i in range(5)]
    for i, run_id in enumerate(ids):
        store.put(_record(store, run_id), _row(run_id, T0 + i))
    assert [r.id for r in store.query()] == ids[:1:-1]
    other = S3Store(url, cache_dir=str(tmp_path / "other"))
    assert [r.id for r in other.query()] == ids[:1:-1]
    with pytest.raises(StoreError, match="evicted or deleted"):
        other.fetch(ids[0])
    assert other.delete([ids[2]]) == 1
    assert [r.id for r in store.query()] == ids[:2:-1]  # the first reader's cache follows


def test_foreign_and_hostile_index_objects_are_skipped(url: str, seaweed: Any,
                                                       bucket: str) -> None:
    store = open_store(url)
    good = new_run_id(T0)
    store.put(_record(store, good), _row(good, T0))
    prefix = url.split("/", 3)[3]
    c = seaweed.client()
    bad = {new_run_id(T0 + 1): b"{not json", new_run_id(T0 + 2): b"[" * 100_000,
           new_run_id(T0 + 3): json.dumps(_row(good, T0).to_json()).encode(),  # wrong id
           new_run_id(T0 + 4): b"\xff" * 10}
    for run_id, body in bad.items():
        c.put_object(Bucket=bucket, Key=f"{prefix}/index/{run_id}.json", Body=body)
    c.put_object(Bucket=bucket, Key=f"{prefix}/index/README.txt", Body=b"hello")
    assert [r.id for r in S3Store(url, cache_dir=str(Path(store.cache_dir) / "x")).query()
            ] == [good]


def test_errors_name_the_cause_without_the_secret(url: str, seaweed: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(StoreError, match=r"NoSuchBucket.*aws s3 mb"):
        open_store("s3://no-such-bucket-here/x").query()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + seaweed.secret_key)
    with pytest.raises(StoreError) as err:
        open_store(url).query()
    assert "AWS_SECRET_ACCESS_KEY" in str(err.value)
    assert seaweed.secret_key not in str(err.value)
    with pytest.raises(StoreError, match="not an s3://bucket/prefix url"):
        open_store("s3://A_B/x")


def test_without_boto3_the_error_says_what_to_install(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['boto3'] = None\n"
            "from replay._runs.store import open_store\n"
            "from replay._cassette.errors import StoreError\n"
            "try:\n    open_store('s3://bucket-x/p')\n"
            "except StoreError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60, check=True)
    assert "pip install 'agent-replay[s3]'" in out.stdout


def test_a_new_reader_starts_from_a_snapshot(url: str, tmp_path: Path, seaweed: Any,
                                             bucket: str, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    from replay._runs.store import s3

    monkeypatch.setattr(s3, "SNAPSHOT_AFTER", 3)
    monkeypatch.setattr(s3, "LIST_SPLIT", 2)  # warm listings split into ranges of 2 keys
    store = S3Store(url, cache_dir=str(tmp_path / "writer"))
    ids = [new_run_id(T0 + i) for i in range(6)]
    for i, run_id in enumerate(ids):
        store.put(_record(store, run_id), _row(run_id, T0 + i))
    prefix = url.split("/", 3)[3]
    first = S3Store(url, cache_dir=str(tmp_path / "first"))
    assert len(first.query()) == 6  # read one by one, then left a snapshot
    snaps = [k for k in seaweed.objects(bucket, f"{prefix}/snapshots/")]
    assert len(snaps) == 1 and snaps[0].endswith(".jsonl.zst")

    c = seaweed.client()
    # proof the next reader used the snapshot: an index object it cannot read
    # one by one any more is still listed, with its row from the snapshot
    c.put_object(Bucket=bucket, Key=f"{prefix}/index/{ids[0]}.json", Body=b"garbage")
    store.delete([ids[1]])  # gone since the snapshot: not listed
    late = new_run_id(T0 + 10)  # added since: read alone
    store.put(_record(store, late), _row(late, T0 + 10))
    second = S3Store(url, cache_dir=str(tmp_path / "second"))
    assert [r.id for r in second.query()] == [late, *ids[:1:-1], ids[0]]
    # the writer's warm cache: its listing ran in ranges, and agrees
    assert [r.id for r in store.query()] == [late, *ids[:1:-1], ids[0]]

    # a damaged snapshot is ignored: rows come from the index objects
    c.put_object(Bucket=bucket, Key=f"{prefix}/snapshots/99991231-000000-00000000.jsonl.zst",
                 Body=b"\x28\xb5\x2f\xfd" + b"\x00" * 64)
    third = S3Store(url, cache_dir=str(tmp_path / "third"))
    assert [r.id for r in third.query()] == [late, *ids[:1:-1]]


def test_store_traffic_made_while_a_run_records_is_not_in_that_run(url: str,
                                                                    tmp_path: Path) -> None:
    store = S3Store(url, cache_dir=str(tmp_path / "c"))
    earlier = new_run_id(T0)
    path = _record(store, earlier)
    with replay.record(tmp_path / "busy.replay"):
        time.time()  # the run's own event
        store.put(path, _row(earlier, T0))  # e.g. a finished request stored meanwhile
        assert [r.id for r in store.query()] == [earlier]
        store.fetch(earlier)
    events = replay.read_cassette(tmp_path / "busy.replay").events
    assert [e.channel for e in events] == ["clock"]
