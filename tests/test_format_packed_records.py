"""Malformed records inside an intact packed cassette: the index path's own checks.

A packed file whose frames and index pass their checksums can still hold records
no writer would write (a crafted file). Reading it through the index must give
the documented error, and the one-pass read (``iter(EventLog)``, which takes the
usual record inline) must give exactly what random access (``log[i]``) gives:
the same events, or the same error with the same offset, reason and events read.
"""

from __future__ import annotations

import pathlib

import crc32c
import msgpack
import pytest
from _format_child import golden_header, make_event

from replay._cassette import encode_header
from replay._cassette import index as ix
from replay._cassette.codec import Encoder
from replay._cassette.errors import CassetteError
from replay._cassette.eventlog import EventLog
from replay._cassette.events import CallSite, Chunk, Event, RecordedError
from replay._cassette.pack import pack_journal
from replay._cassette.reader import open_events

REF0 = msgpack.ExtType(1, b"\x00")


def framed(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "little") + crc32c.crc32c(payload).to_bytes(4, "little") \
        + payload


def packed(path: pathlib.Path, records: list[tuple[bytes, Event | None]]) -> None:
    """A packed cassette at ``path`` holding these record payloads, each indexed as the
    given event's row (None: a blob, indexed in ``bpos``), built from a journal."""
    head = encode_header(golden_header())
    batch = ix.Batch()
    stream = bytearray()
    events = 0
    for payload, ev in records:
        if ev is None:
            batch.bpos.append(len(stream))
        else:
            batch.add(ev, len(stream))
            events += 1
        stream += framed(payload)
    stream += framed(ix.pack(batch.record()))
    stream += framed(msgpack.packb({"k": "end", "events": events,
                                    "blobs": len(records) - events}))
    journal = path.with_suffix(".partial")
    journal.write_bytes(head + b"JRNL" + bytes(stream))
    pack_journal(str(journal), str(path), len(head))


def ev(i: int = 0, **fields: object) -> bytes:
    return msgpack.packb({"k": "ev", **make_event(i).to_map(), **fields})


def blob(ident: int, value: object) -> bytes:
    return msgpack.packb({"k": "blob", "id": ident, "v": value})


def nested_tuples(depth: int) -> bytes:
    inner = b"\x90"
    for _ in range(depth):
        inner = msgpack.packb(msgpack.ExtType(2, b"\x91" + inner))
    return inner


def raw_request(raw: bytes) -> bytes:
    packed_ev = ev(request=None)
    assert packed_ev.count(b"\xa7request\xc0") == 1
    return packed_ev.replace(b"\xa7request\xc0", b"\xa7request" + raw)


def vars_of(e: Event) -> dict[str, object]:
    return {f: getattr(e, f) for f in e.__slots__}  # type: ignore[attr-defined]


def written(events: list[Event]) -> list[tuple[bytes, Event | None]]:
    """The records the reference writer encodes for ``events`` (blobs, then each event)."""
    enc = Encoder()
    out: list[tuple[bytes, Event | None]] = []
    for e in events:
        *blobs, record = enc.encode_payloads(e)
        out += [(b, None) for b in blobs]
        out.append((record, e))
    return out


E0 = make_event(0)
BODY = bytes(range(256)) * 8
WITH_BODY = Event(seq=0, channel="http", request={"method": "GET"},
                  response={"status": 200}, chunks=(Chunk(BODY, 5),))
BODY_EV = msgpack.packb({"k": "ev", **{**WITH_BODY.to_map(), "chunks": [[REF0, 5]]}})

MALFORMED: dict[str, list[tuple[bytes, Event | None]]] = {
    "unknown record kind": [(msgpack.packb({"k": "note"}), E0)],
    "record is a list": [(msgpack.packb(["ev", "a" * 20]), E0)],
    "unknown ext code": [(ev(request=msgpack.ExtType(5, b"")), E0)],
    "ref to no blob": [(ev(request=REF0), E0)],
    "blob refers to itself": [(blob(0, REF0), None), (ev(request=REF0), E0)],
    "ref data of 3 bytes": [(blob(0, "x"), None),
                            (ev(request=msgpack.ExtType(1, b"\0\0\0")), E0)],
    "tuple ext not an array": [(ev(request=msgpack.ExtType(2, msgpack.packb(5))), E0)],
    "Timestamp in meta": [(ev(meta={"t": msgpack.Timestamp(1, 0)}), E0)],
    "event without seq": [(msgpack.packb({"k": "ev", "channel": "c", "request": 1}), E0)],
    "event with a str seq": [(ev(seq="1"), E0)],
    "seq differs from the index": [(ev(seq=7), E0)],
    "site of 2 items": [(ev(site=["/a.py", 1]), E0)],
    "chunk data a str": [(ev(chunks=[["x", 1]]), E0)],
    "msgpack nested 5000 deep": [(raw_request(b"\x91" * 5000 + b"\xc0"), E0)],
    "tuples nested 9 deep": [(raw_request(nested_tuples(9)), E0)],
    "tuples nested 3000 deep": [(raw_request(nested_tuples(3000)), E0)],
    "not msgpack": [(raw_request(b"\xc1"), E0)],
    # the body blob's inline path: anything but the exact shape goes to msgpack
    "bin blob with another id": [(blob(1, BODY), None), (BODY_EV, WITH_BODY)],
    "bin blob with a byte after it": [(blob(0, BODY) + b"\xc0", None), (BODY_EV, WITH_BODY)],
    "bin blob cut short": [(blob(0, BODY)[:-1], None), (BODY_EV, WITH_BODY)],
    "blob with a fourth key": [
        (msgpack.packb({"k": "blob", "id": 0, "v": BODY, "x": 1}), None),
        (BODY_EV, WITH_BODY)],
    # what the typed struct of the fast path (recstruct.py) refuses, from_map refuses too
    "event with a bool seq": [(ev(seq=True), E0)],
    "event with a nil task": [(ev(task=None), E0)],
    "site nil": [(ev(site=None), E0)],
    "site line a bool": [(ev(site=["/a.py", True, "f"]), E0)],
    "chunks nil": [(ev(chunks=None), E0)],
    "chunk of 3 items": [(ev(chunks=[[b"x", 1, 2]]), E0)],
    "chunk time a float": [(ev(chunks=[[b"x", 1.5]]), E0)],
    "chunk data a ref to a str": [(blob(0, "s" * 400), None), (ev(chunks=[[REF0, 1]]), E0)],
    "meta nil": [(ev(meta=None), E0)],
    "error a str": [(ev(error="boom"), E0)],
    "error args a map": [(ev(error={"type": "builtins.E", "message": "m", "args": {}}), E0)],
    "Timestamp in request": [(ev(request=[msgpack.Timestamp(1, 0)]), E0)],
    "extra data after the map": [(ev() + b"\xc0", E0)],
    "bad UTF-8 in a key": [(raw_request(b"\x81\xa2\xff\xfe\x01"), E0)],
}

GOOD: dict[str, list[tuple[bytes, Event | None]]] = {
    "bin blob": [(blob(0, BODY), None), (BODY_EV, WITH_BODY)],
    "bin blob, 2-byte id": [*((blob(i, bytes([i % 256]) * 300), None) for i in range(300)),
                            (msgpack.packb({"k": "ev", **{**WITH_BODY.to_map(),
                                                          "chunks": [[msgpack.ExtType(
                                                              1, (299).to_bytes(2, "big")),
                                                              5]]}}),
                             Event(0, "http", {"method": "GET"}, {"status": 200},
                                   chunks=(Chunk(bytes([299 % 256]) * 300, 5),)))],
    "str blob": [(blob(0, "s" * 400), None),
                 (ev(request=REF0), Event(**{**vars_of(E0), "request": "s" * 400}))],
    "the writer's records": written([make_event(i) for i in range(60)]),
    # what the fast path leaves to msgpack and from_map, read as before
    "unknown key": [(ev(later=[1, 2]), E0)],
    "site a tuple": [(ev(site=msgpack.ExtType(2, msgpack.packb(["/a.py", 3, "f"]))),
                      Event(**{**vars_of(E0), "site": CallSite("/a.py", 3, "f")}))],
    # untyped parts through the ext hook, map keys of every allowed type
    "big int, tuple and odd keys in the request": [
        (ev(request={"n": msgpack.ExtType(3, (2**70).to_bytes(9, "big", signed=True)),
                     "t": msgpack.ExtType(2, msgpack.packb([1, "a"])), 1: "int", b"b": None,
                     msgpack.ExtType(2, msgpack.packb([1, 2])): "tuple key"}),
         Event(**{**vars_of(E0), "request": {"n": 2**70, "t": (1, "a"), 1: "int", b"b": None,
                                             (1, 2): "tuple key"}}))],
    "error with every field": [
        (ev(error={"type": "builtins.E", "message": "m", "traceback": "tb", "args": [1, "x"]},
            response=None),
         Event(**{**vars_of(E0), "response": None,
                  "error": RecordedError("builtins.E", "m", "tb", (1, "x"))}))],
}


def log_of(path: pathlib.Path) -> EventLog:
    cassette = open_events(path)
    assert cassette is not None and isinstance(cassette.events, EventLog)
    return cassette.events


def outcome(read: object) -> tuple[object, ...]:
    """What a read gives: ("ok", events) or (error type, offset, reason, events read)."""
    try:
        return ("ok", list(read()))  # type: ignore[operator]
    except CassetteError as exc:
        return (type(exc), exc.offset, exc.reason, exc.events_read)


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_record_in_a_packed_file(name: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad.replay"
    packed(path, MALFORMED[name])
    log = log_of(path)
    one_pass = outcome(lambda: iter(log_of(path)))
    assert one_pass[0] != "ok", f"{name}: read without error"
    random = outcome(lambda: (log[i] for i in range(len(log))))
    assert one_pass[1] == log._p.index.frames["off"][0]  # the frame holding it
    reason = str(one_pass[2])
    assert reason and not reason.endswith(": ")
    if name.startswith(("bin blob", "blob ")):  # a bad blob is read as itself in one
        # pass and through the reference to it otherwise: the reasons' wording differs
        one_pass, random = one_pass[:2] + one_pass[3:], random[:2] + random[3:]
    assert one_pass == random


@pytest.mark.parametrize("name", list(GOOD))
def test_well_formed_records_read_alike(name: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "good.replay"
    packed(path, GOOD[name])
    expect = [e for _, e in GOOD[name] if e is not None]
    assert outcome(lambda: iter(log_of(path))) == ("ok", expect)
    log = log_of(path)
    assert [log[i] for i in range(len(log))] == expect


def test_fast_path_takes_the_writers_records(tmp_path: pathlib.Path) -> None:
    """Every event record the writer writes is taken by msgspec's typed decode
    (``_Packed.fast_event``), not decoded a second time, and gives what msgpack and
    ``Event.from_map`` give."""
    path = tmp_path / "w.replay"
    records = written([make_event(i) for i in range(60)])
    packed(path, records)
    log = log_of(path)
    p = log._p
    blobs = list(iter(log))  # one pass first: the blobs the events refer to are cached
    for i, expect in enumerate(blobs):
        data, j, off = p.locate(log._cols["pos"][i])
        length = int.from_bytes(data[j:j + 4], "little")
        assert p.fast_event(data, j + 8, j + 8 + length, log._cols["pos"][i]) == expect
        m, _ = p.decode_at(data, j, log._cols["pos"][i], off)
        assert Event.from_map(m) == expect


def test_array_as_map_key_reads_alike(tmp_path: pathlib.Path) -> None:
    """A raw msgpack array used as a map key (no writer writes one: a tuple key is
    ext 2) is read as a tuple key by msgspec and refused by msgpack-python; the
    packed reader takes its fast path first both ways, so they agree."""
    path = tmp_path / "k.replay"
    packed(path, [(raw_request(b"\x81\x92\x01\x02\xa1v"), E0)])
    log = log_of(path)
    assert outcome(lambda: iter(log_of(path))) == \
        outcome(lambda: (log[i] for i in range(len(log)))) == \
        ("ok", [Event(**{**vars_of(E0), "request": {(1, 2): "v"}})])
