"""The cassette file format: round trips, de-duplication, the writer's contract."""

from __future__ import annotations

import os
import pathlib
import threading

import pytest
from _format_child import golden_header, make_event, text

from replay._cassette import (
    EXTENSION,
    CassetteWriter,
    Header,
    Limits,
    iter_events,
    read_cassette,
    read_header,
    verify,
)
from replay._cassette.codec import Encoder
from replay._cassette.errors import (
    CassetteLimitError,
    CassetteTruncatedError,
    UnrecordableValueError,
)
from replay._cassette.events import Event, RecordedError


def write(path: pathlib.Path, events: list[Event], header: Header | None = None) -> None:
    with CassetteWriter(path, header or golden_header()) as w:
        for ev in events:
            w.write(ev)


ODD_EVENTS = [
    Event(seq=0, channel="", request=""),
    Event(seq=1, channel="x", request={}, response=[], meta={"e": ()}),
    Event(seq=2, channel="ints", request=[0, -1, -32, -33, 127, 128, 255, 256, 65535, 65536,
                                          2**32, -(2**31) - 1, 2**64 - 1, -(2**63)]),
    Event(seq=3, channel="floats", request=[0.0, -0.0, 1e308, 5e-324, float("inf")]),
    Event(seq=4, channel="keys", request={1: "int key", "": "empty", "ü": b""}),
    Event(seq=5, channel="tuples", request=((), ((),), (1, [2, (3,)])),
          response=tuple(text(9, 20) for _ in range(40))),
    Event(seq=6, channel="big", request="z" * 100_000, response=b"\x00" * 300_000),
    Event(seq=7, channel="err", request=None,
          error=RecordedError("m.E", "boom", "", ("boom", None, (1, 2)))),
    Event(seq=8, channel="same-big-twice", request=["y" * 500, "y" * 500, {"a": "y" * 500}]),
]


def test_round_trip_varied_events(tmp_path: pathlib.Path) -> None:
    events = [make_event(i) for i in range(60)] + ODD_EVENTS
    path = tmp_path / f"run{EXTENSION}"
    write(path, events)
    cassette = read_cassette(path)
    assert cassette.events == tuple(events)
    assert cassette.header == golden_header()
    assert cassette.damage is None
    assert cassette.path == str(path)
    assert list(iter_events(str(path))) == events
    assert read_header(path) == golden_header()
    # tuples stay tuples, lists stay lists, bytes stay bytes
    assert type(cassette.events[-4].request[2][1][1]) is tuple
    assert type(cassette.events[-4].request[2][1]) is list
    assert cassette.events[-3].response == b"\x00" * 300_000


def test_header_new_fills_run_facts() -> None:
    h = Header.new(meta={"fingerprint": "abc"})
    assert h.created.endswith("Z") and "T" in h.created
    assert isinstance(h.argv, tuple) and h.python and h.platform
    assert h.meta == {"fingerprint": "abc"} and h.version == 2


def test_dedup_stores_repeated_content_once(tmp_path: pathlib.Path) -> None:
    big = text(3, 5000)
    events = [Event(seq=i, channel="http", request={"system": big, "n": i},
                    response={"role": "assistant", "content": big}) for i in range(50)]
    path = tmp_path / "dup.replay"
    write(path, events)
    report = verify(path)
    assert report.ok and report.events_read == 50
    # the text and the response map once each; every request map (its plain
    # size is over the threshold) is a blob too, but unique, and holds a ref
    assert report.blob_count == 2 + 50
    assert report.raw_size < 3 * len(big)  # 100 copies without sharing
    loaded = read_cassette(path).events
    assert loaded == tuple(events)
    # shared on load too: memory stays linear in the content
    assert loaded[0].request["system"] is loaded[49].request["system"]
    assert loaded[3].response is loaded[4].response


def test_dedup_grows_linearly_with_a_resent_conversation(tmp_path: pathlib.Path) -> None:
    def run(turns: int) -> int:
        history: list[dict[str, str]] = []
        path = tmp_path / f"conv{turns}.replay"
        with CassetteWriter(path, golden_header()) as w:
            for i in range(turns):
                user = {"role": "user", "content": text(2 * i, 400)}
                reply = {"role": "assistant", "content": text(2 * i + 1, 400)}
                w.write(Event(seq=i, channel="http", request={"messages": [*history, user]},
                              response=reply))
                history += [user, reply]
        return verify(path).raw_size

    # raw = decompressed record bytes: without sharing it would grow ~4x
    assert run(60) / run(30) < 2.3


def test_blob_failure_leaves_no_dangling_ref(tmp_path: pathlib.Path) -> None:
    big = "q" * 1000
    path = tmp_path / "tx.replay"
    with CassetteWriter(path, golden_header()) as w:
        bad = Event(seq=0, channel="c", request={"a": big, "b": {1, 2}})
        with pytest.raises(UnrecordableValueError):
            w.write(bad)  # "big" was hashed before the set failed
        w.write(Event(seq=1, channel="c", request={"a": big}))
        w.write(Event(seq=2, channel="c", request={"a": big}))
    events = read_cassette(path).events
    assert [e.seq for e in events] == [1, 2] and events[1].request == {"a": big}


def test_unrecordable_values_are_refused(tmp_path: pathlib.Path) -> None:
    with CassetteWriter(tmp_path / "u.replay", golden_header()) as w:
        for request in ({1, 2}, object(), 2**40_000, [float] * 3, {"deep": _nested(2000)}):
            with pytest.raises(UnrecordableValueError):
                w.write(Event(seq=0, channel="c", request=request))  # type: ignore[arg-type]
        w.write(Event(seq=1, channel="c", request="fine"))
    assert [e.seq for e in read_cassette(tmp_path / "u.replay").events] == [1]


def test_tuple_nesting_is_bounded(tmp_path: pathlib.Path) -> None:
    def nest(depth: int) -> tuple[object, ...]:
        v: tuple[object, ...] = ()
        for _ in range(depth - 1):
            v = (v,)
        return v

    path = tmp_path / "tup.replay"
    with CassetteWriter(path, golden_header()) as w:
        w.write(Event(seq=0, channel="c", request=nest(8), response=[nest(8)] * 40))
        for bad in (nest(9), [nest(9)] * 40):
            with pytest.raises(UnrecordableValueError):
                w.write(Event(seq=1, channel="c", request=bad))
    [event] = read_cassette(path).events
    assert event.request == nest(8) and event.response == [nest(8)] * 40


def _nested(depth: int) -> list[object]:
    v: list[object] = []
    for _ in range(depth):
        v = [v]
    return v


def test_subclasses_are_stored_as_their_base_type(tmp_path: pathlib.Path) -> None:
    import enum
    from collections import OrderedDict
    from typing import NamedTuple

    class Color(enum.IntEnum):
        RED = 1

    class P(NamedTuple):
        x: int

    path = tmp_path / "sub.replay"
    write(path, [Event(seq=0, channel="c", request={"o": OrderedDict(a=1), "e": Color.RED,
                                                    "p": P(3)})])
    got = read_cassette(path).events[0].request
    assert got == {"o": {"a": 1}, "e": 1, "p": (3,)}
    assert type(got["o"]) is dict and type(got["e"]) is int and type(got["p"]) is tuple


def test_writes_to_partial_then_renames(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run.replay"
    write(path, [make_event(0)])  # an older recording
    old = path.read_bytes()
    w = CassetteWriter(path, golden_header())
    w.write(make_event(1))
    assert path.read_bytes() == old  # untouched while re-recording
    assert os.path.exists(w.partial_path) and w.partial_path == str(path) + ".partial"
    assert read_header(w.partial_path) == golden_header()
    w.close()
    assert not os.path.exists(str(path) + ".partial")
    assert read_cassette(path).events == (make_event(1),)
    w.close()  # idempotent
    with pytest.raises(ValueError):
        w.write(make_event(2))


def test_abort_keeps_partial_readable_as_truncated(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run.replay"
    write(path, [make_event(0)])
    old = path.read_bytes()
    w = CassetteWriter(path, golden_header())
    for i in range(10):
        w.write(make_event(i))
    w.abort()
    w.abort()
    w.close()  # after abort: nothing more happens
    assert path.read_bytes() == old
    partial = str(path) + ".partial"
    with pytest.raises(CassetteTruncatedError) as info:
        read_cassette(partial)
    assert info.value.events_read == 10 and info.value.offset == os.path.getsize(partial)
    c = read_cassette(partial, strict=False)
    assert c.events == tuple(make_event(i) for i in range(10))
    assert isinstance(c.damage, CassetteTruncatedError)
    report = verify(partial)
    assert report.status == "truncated" and report.events_read == 10 and not report.ok


def test_context_manager_closes_even_when_the_run_raises(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "r.replay"
    with pytest.raises(RuntimeError), CassetteWriter(path, golden_header()) as w:
        w.write(make_event(0))
        raise RuntimeError("agent crashed")
    assert read_cassette(path).events == (make_event(0),)


def test_transform_runs_before_encoding(tmp_path: pathlib.Path) -> None:
    def redact(ev: Event) -> Event:
        return Event(seq=ev.seq, channel=ev.channel, request="[redacted]")

    path = tmp_path / "t.replay"
    with CassetteWriter(path, golden_header(), transform=redact) as w:
        w.write(make_event(1))
    assert read_cassette(path).events == (Event(seq=1, channel="http", request="[redacted]"),)


def test_concurrent_writes_are_whole(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "threads.replay"
    with CassetteWriter(path, golden_header()) as w:
        def worker(base: int) -> None:
            for i in range(base, base + 150):
                w.write(make_event(i))

        threads = [threading.Thread(target=worker, args=(k * 150,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    events = read_cassette(path).events
    assert sorted(events, key=lambda e: e.seq) == [make_event(i) for i in range(600)]


def test_empty_cassette_and_pathlike(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "empty.replay"
    write(path, [])
    c = read_cassette(path)
    assert c.events == () and c.damage is None
    report = verify(path)
    assert report.ok and report.events_read == 0 and report.offset is None
    assert report.file_size == path.stat().st_size
    assert report.as_dict()["status"] == "complete" and "complete" in report.describe()


def test_level_is_checked(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError):
        CassetteWriter(tmp_path / "x.replay", golden_header(), level=22)
    assert not os.path.exists(tmp_path / "x.replay.partial")
    write_l = CassetteWriter(tmp_path / "y.replay", golden_header(), level=19)
    write_l.write(make_event(1))
    write_l.close()
    assert read_cassette(tmp_path / "y.replay").events == (make_event(1),)


def test_reader_limits(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "big.replay"
    write(path, [Event(seq=0, channel="c", request=bytes(200))])
    with pytest.raises(CassetteLimitError):  # a packed file's events decode on demand
        list(read_cassette(path, limits=Limits(max_record_size=100)).events)
    with pytest.raises(CassetteLimitError) as info:
        read_header(path, limits=Limits(max_header_size=10))
    assert info.value.offset == 10
    assert verify(path, limits=Limits(max_record_size=100)).status == "over limit"
    # a packed frame's window is its content size; a version 1 stream's is 8 MiB
    big = tmp_path / "big.replay"
    write(big, [Event(seq=i, channel="c", request=text(i, 3000)) for i in range(300)])
    with pytest.raises(CassetteLimitError):
        read_cassette(big, limits=Limits(max_window_size=64 * 1024))


def test_writer_refuses_records_readers_would_refuse(tmp_path: pathlib.Path) -> None:
    enc = Encoder(max_record_size=1000)
    with pytest.raises(ValueError):
        enc.encode_event(Event(seq=0, channel="c", request=bytes(2000)))
    assert enc.blobs == 0 and enc.events == 0
    enc.encode_event(Event(seq=0, channel="c", request=bytes(900)))
    assert enc.blobs == 1 and enc.events == 1
