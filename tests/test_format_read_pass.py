"""Reading a packed cassette in one pass (``iter(EventLog)``), and the writer's
policy for streamed bodies: both must give exactly the events random access gives."""

from __future__ import annotations

import pathlib

import pytest
from _format_child import golden_header, make_event, text

from replay._cassette import CassetteWriter, iter_events, read_cassette, verify
from replay._cassette.codec import _BLOB_HEAD, _BLOB_VALUE, CHUNK_BLOB_MIN_SIZE
from replay._cassette.errors import CassetteCorruptError
from replay._cassette.eventlog import EventLog
from replay._cassette.events import CallSite, Chunk, Event, RecordedError
from replay._cassette.reader import open_events


def write(path: pathlib.Path, events: list[Event]) -> None:
    with CassetteWriter(path, golden_header()) as w:
        for ev in events:
            w.write(ev)


def log_of(path: pathlib.Path) -> EventLog:
    cassette = open_events(path)
    assert cassette is not None and isinstance(cassette.events, EventLog)
    return cassette.events


def streamed(i: int, body: bytes) -> Event:
    return Event(seq=i, channel="http", request={"method": "GET", "url": f"http://h/{i}"},
                 response={"status": 200, "headers": [["a", "b"]]},
                 chunks=(Chunk(body, 10 + i), Chunk(b"tail", 20 + i)), start_ns=i,
                 site=CallSite("/a.py", i + 1, "f"), meta={"client": "httpx"})


def test_one_pass_gives_what_random_access_gives(tmp_path: pathlib.Path) -> None:
    # many frames (a frame holds ~1 MiB of records), blobs shared across them
    events = [make_event(i) for i in range(3000)]
    path = tmp_path / "run.replay"
    write(path, events)
    assert len(log_of(path)._p.raw_starts) > 1
    assert list(log_of(path)) == events
    fresh = log_of(path)
    assert [fresh[i] for i in range(len(fresh))] == events
    # random access first (blobs cached out of order), then a pass; a second pass
    half = log_of(path)
    assert half[2999] == events[2999] and half[7] == events[7]
    assert list(half) == events and list(half) == events
    # a transformed view reads the same way
    renamed = log_of(path).map(lambda ev: Event(ev.seq, ev.channel.upper(), ev.request))
    assert [ev.channel for ev in renamed] == [ev.channel.upper() for ev in events]
    assert list(iter_events(path)) == events


def test_one_pass_stops_at_damage_with_the_offset(tmp_path: pathlib.Path) -> None:
    events = [make_event(i) for i in range(3000)]
    path = tmp_path / "run.replay"
    write(path, events)
    log = log_of(path)
    off = log._p.index.frames["off"][1]
    data = bytearray(path.read_bytes())
    data[off + 40] ^= 0xFF  # inside the second frame
    path.write_bytes(bytes(data))
    got: list[Event] = []
    with pytest.raises(CassetteCorruptError) as err:
        got.extend(log)
    assert err.value.offset == off
    assert got == events[:len(got)] and 0 < len(got) < len(events)
    assert err.value.events_read == len(got)


def test_streamed_body_is_inline_and_a_large_one_one_blob(tmp_path: pathlib.Path) -> None:
    body = text(5, 2000).encode()
    large = text(6, CHUNK_BLOB_MIN_SIZE).encode()
    events = [streamed(i, body) for i in range(20)] + [streamed(20 + i, large) for i in range(3)]
    path = tmp_path / "stream.replay"
    write(path, events)
    # the large body, and nothing else: bodies under CHUNK_BLOB_MIN_SIZE stay inline
    # (new content, rarely repeated), as do the chunk list and its [data, at_ns] pairs
    # (arrival times, new in every event)
    assert verify(path).blob_count == 1
    loaded = read_cassette(path).events
    assert list(loaded) == events
    assert loaded[20].chunks[0].data is loaded[22].chunks[0].data


def test_from_map_checks_every_field() -> None:
    ev = Event(seq=3, channel="tool:x", request={"a": 1}, response=[1], start_ns=5,
               duration_ns=6, task="main/1", site=CallSite("/f.py", 2, "g"),
               chunks=(Chunk(b"a", 1),), parent=1, meta={"m": 1},
               error=RecordedError("builtins.E", "boom", "tb", ("boom",)))
    assert Event.from_map(ev.to_map()) == ev
    assert Event.from_map(Event(0, "c", None).to_map()) == Event(0, "c", None)
    bad: list[tuple[str, object]] = [
        ("seq", "1"), ("seq", True), ("channel", 1), ("start_ns", 1.0), ("duration_ns", None),
        ("task", b"main"), ("site", ["/f.py", "2", "g"]), ("site", ["/f.py", 2]),
        ("chunks", [[b"a"]]), ("chunks", [["a", 1]]), ("chunks", {"a": 1}),
        ("parent", "1"), ("meta", []), ("error", None), ("error", {"type": 1, "message": ""}),
        ("error", {"type": "E", "message": "", "args": 1}),
    ]
    for key, value in bad:
        m = ev.to_map()
        m[key] = value
        with pytest.raises(ValueError):
            Event.from_map(m)
    m = ev.to_map()
    del m["request"]
    with pytest.raises(ValueError):
        Event.from_map(m)
    with pytest.raises(ValueError):
        Event.from_map([1])


def test_from_map_builds_frozen_events_and_shares_call_sites() -> None:
    ev = Event(seq=3, channel="http", request={"a": 1}, site=CallSite("/f.py", 2, "g"),
               chunks=(Chunk(b"a", 1),))
    a, b = Event.from_map(ev.to_map()), Event.from_map(ev.to_map())
    assert type(a) is Event and a == ev and hash(a.site) == hash(ev.site)
    assert a.site is b.site  # frozen, so one object serves every event of a line
    with pytest.raises(AttributeError):  # dataclasses.FrozenInstanceError
        a.seq = 4  # type: ignore[misc]
    m = ev.to_map()
    m["seq"] = "3"  # a bad field after the object was started: nothing half-built escapes
    with pytest.raises(ValueError, match="seq"):
        Event.from_map(m)
    other = Event.from_map({**ev.to_map(), "site": ["/f.py", 3, "g"]})
    assert other.site == CallSite("/f.py", 3, "g") and other.site is not a.site


def test_bytes_blob_head_read_without_decoding_and_anything_else_declined(
        tmp_path: pathlib.Path) -> None:
    # bodies of CHUNK_BLOB_MIN_SIZE (blobs) with blob ids in the fixint, uint8 and uint16
    # forms, the ids between them taken by the requests' 300-char notes (str blobs)
    events = [streamed(i, text(i, CHUNK_BLOB_MIN_SIZE).encode()) if i in (0, 200, 301)
              else Event(i, "http", {"method": "GET", "note": text(i, 300)})
              for i in range(302)]
    path = tmp_path / "bodies.replay"
    write(path, events)
    assert list(log_of(path)) == events  # the pass takes every body by its head
    p = log_of(path)._p
    body = b"z" * 300

    def taken(head: bytes, ident: int) -> bool:
        payload = head + body
        return p.bin_blob(payload, 0, len(payload), ident)

    for ident, form in [(5, b"\x05"), (200, b"\xcc\xc8"), (300, b"\xcd\x01\x2c"),
                        (5, b"\xcd\x00\x05"), (70000, b"\xce\x00\x01\x11\x70")]:
        assert taken(_BLOB_HEAD + form + _BLOB_VALUE + b"\xc5\x01\x2c", ident), form
        assert p.blobs[ident][0] == body
    for head, ident in [
        (_BLOB_HEAD + b"\x05" + _BLOB_VALUE + b"\xc5\x01\x2c", 6),  # another id
        (_BLOB_HEAD + b"\x05" + _BLOB_VALUE + b"\xc5\x01\x2d", 5),  # length past the record
        (_BLOB_HEAD + b"\x05" + _BLOB_VALUE + b"\xc4\x2c", 5),  # length short of it
        (_BLOB_HEAD + b"\x05" + _BLOB_VALUE + b"\xd9\x01\x2c", 5),  # a str, not bytes
        (_BLOB_HEAD + b"\xd0\x05" + _BLOB_VALUE + b"\xc5\x01\x2c", 5),  # a signed id
    ]:
        assert not taken(head, ident), head
