"""``verify`` of a packed cassette frame by frame (replay/_cassette/framecheck.py).

The fast path may only accept what the sequential reader accepts, and must
report damage exactly as it does: every test here compares the two on the
same file (``fast=False`` is the sequential reader that verify used before).
The file has several frames, container blobs, errors, chunks and tuples, so
both the fast records and the ones it hands to the decoder are exercised.
"""

from __future__ import annotations

import array
import hashlib
import pathlib
import random
import struct
from collections.abc import Callable
from typing import Any

import crc32c
import msgpack
import pytest
import zstandard
from _format_child import golden_header, make_event

from replay._cassette import CassetteWriter, Limits, VerifyReport, iter_events, verify
from replay._cassette.errors import CassetteCorruptError, CassetteError
from replay._cassette.events import Event
from replay._cassette.indexread import read_index
from replay._cassette.reader import _Reader

FRAMING = struct.Struct("<II")
N = 3000
SEED = 20261203


def events() -> list[Event]:
    """Varied events (make_event) between tool events of 500 unique bytes, as a long
    run has them: about 2.3 MB of records, so several frames."""
    out: list[Event] = []
    for i in range(N):
        if i % 3:
            text = "".join(hashlib.blake2b(i.to_bytes(4, "little"), salt=bytes([s])).hexdigest()
                           for s in range(4))
            out.append(Event(seq=i, channel="tool:fetch", request={"args": [i]},
                             response=text[:500], start_ns=i * 10, duration_ns=7, task="main"))
        else:
            ev = make_event(i % 60)
            out.append(Event(seq=i, channel=ev.channel, request=ev.request, response=ev.response,
                             error=ev.error, start_ns=i * 10, duration_ns=ev.duration_ns,
                             task=ev.task, site=ev.site, chunks=ev.chunks,
                             parent=None if ev.parent is None else i - 1, meta=ev.meta))
    return out


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[Event]]:
    path = tmp_path_factory.mktemp("verify") / "run.replay"
    evs = events()
    with CassetteWriter(path, golden_header()) as w:
        for ev in evs:
            w.write(ev)
    return path.read_bytes(), evs


def run(path: pathlib.Path, *, fast: bool, limits: Limits | None = None
        ) -> tuple[VerifyReport, _Reader]:
    """verify's report, by the fast path or the sequential reader (as verify builds it)."""
    return report_of(_Reader(path, limits or Limits(), keep_blob_values=False, fast=fast))


def report_of(reader: _Reader) -> tuple[VerifyReport, _Reader]:
    """Read every event of ``reader`` and make verify's report of it."""
    status, offset, message = "complete", None, ""
    try:
        for _ in reader.events():
            pass
    except CassetteError as exc:
        status, offset, message = exc.kind, exc.offset, exc.reason
    report = VerifyReport(path=reader.path, status=status,  # type: ignore[arg-type]
                          events_read=reader.decoder.events, offset=offset, message=message,
                          file_size=reader.file_size, blob_count=len(reader.decoder.blobs),
                          compressed_size=reader.frame_size, raw_size=reader.raw_size,
                          version=reader.header.version if reader.header else None)
    return report, reader


def frames_of(path: pathlib.Path) -> dict[str, array.array[int]]:
    with open(path, "rb") as f:
        size = path.stat().st_size
        f.seek(size - 24)
        _, at, _, _ = struct.unpack("<4sQQI", f.read(24))
        return read_index(f, at, size, Limits()).frames


def repack(path: pathlib.Path, *, frame: Callable[[int, bytes], bytes] | None = None,
           index: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
    """Rewrite a packed file as a writer would, after ``frame(k, data)`` changed a data
    frame's records (same length) or ``index(m)`` an ``ix`` record: every frame, CRC,
    table and trailer made consistent again, so only the changed content is wrong."""
    data = path.read_bytes()
    size = len(data)
    _, at, _, _ = struct.unpack("<4sQQI", data[-24:])
    table = frames_of(path)
    cctx = zstandard.ZstdCompressor(level=3, write_checksum=True)
    dctx = zstandard.ZstdDecompressor()
    out = bytearray(data[:table["off"][0]])
    cols: dict[str, list[int]] = {k: [] for k in ("off", "len", "crc", "raw", "rawlen")}
    for k, (off, ln, raw, rl) in enumerate(zip(table["off"], table["len"], table["raw"],
                                               table["rawlen"], strict=True)):
        body = dctx.decompress(data[off:off + ln], max_output_size=rl)
        if frame is not None:
            body = frame(k, body)
            assert len(body) == rl
        z = cctx.compress(body)
        for key, v in (("off", len(out)), ("len", len(z)), ("crc", crc32c.crc32c(z)),
                       ("raw", raw), ("rawlen", rl)):
            cols[key].append(v)
        out += z
    raw_index = dctx.decompress(data[at:size - 24], max_output_size=64 << 20)
    records, i = [], 0
    while i < len(raw_index):
        length, _ = FRAMING.unpack_from(raw_index, i)
        m = msgpack.unpackb(raw_index[i + 8:i + 8 + length], raw=False)
        i += 8 + length
        if m["k"] == "frames":
            m = {"k": "frames", "n": len(cols["off"]),
                 **{k: array.array("I" if k == "crc" else "Q", v).tobytes()
                    for k, v in cols.items()}}
        elif index is not None:
            m = index(m)
        payload = msgpack.packb(m)
        records.append(FRAMING.pack(len(payload), crc32c.crc32c(payload)) + payload)
    new_at = len(out)
    zi = cctx.compress(b"".join(records))
    out += zi + struct.pack("<4sQQI", b"ARPX", new_at, len(zi), crc32c.crc32c(zi))
    path.write_bytes(bytes(out))


def records(body: bytes) -> list[tuple[int, bytes]]:
    """(offset, payload) of each record of a decompressed frame."""
    out, i = [], 0
    while i < len(body):
        length, _ = FRAMING.unpack_from(body, i)
        out.append((i, body[i + 8:i + 8 + length]))
        i += 8 + length
    return out


def refit(body: bytes, at: int, payload: bytes) -> bytes:
    """``body`` with the record at ``at`` holding ``payload`` (same length), its CRC fixed."""
    return body[:at] + FRAMING.pack(len(payload), crc32c.crc32c(payload)) + payload \
        + body[at + 8 + len(payload):]


def test_an_intact_file_is_checked_frame_by_frame(packed: tuple[bytes, list[Event]],
                                                  tmp_path: pathlib.Path) -> None:
    data, _ = packed
    path = tmp_path / "ok.replay"
    path.write_bytes(data)
    frames = len(frames_of(path)["off"])
    assert frames >= 3
    fast, reader = run(path, fast=True)
    slow, _ = run(path, fast=False)
    assert fast.ok and fast == slow
    assert fast.events_read == N and verify(path) == fast
    assert reader.fast_frames == frames  # every frame vouched for by the fast path
    assert reader.events_checked == N  # every event's index row compared


def test_limits_still_apply(packed: tuple[bytes, list[Event]], tmp_path: pathlib.Path) -> None:
    """A record over the values limit, or a budget too small for what verify keeps, is
    reported by the fast path as by the sequential reader."""
    data, _ = packed
    path = tmp_path / "limits.replay"
    path.write_bytes(data)
    for limits in (Limits(max_record_values=15), Limits(max_record_size=400),
                   Limits(max_decoded_size=100_000, max_decoded_ratio=0),
                   Limits(max_window_size=256 * 1024)):
        fast, _ = run(path, fast=True, limits=limits)
        slow, _ = run(path, fast=False, limits=limits)
        assert fast == slow, limits
        assert fast.status == "over limit", limits


def test_bit_flips_are_reported_as_the_sequential_reader_reports_them(
        packed: tuple[bytes, list[Event]], tmp_path: pathlib.Path) -> None:
    data, _ = packed
    path = tmp_path / "flip.replay"
    rng = random.Random(SEED)
    new = 0
    for bit in rng.sample(range(len(data) * 8), 150):
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(damaged)
        fast, _ = run(path, fast=True)
        slow, _ = run(path, fast=False)
        assert fast.status == "corrupt", (bit, fast)
        if slow.ok:  # only the frame CRCs of the index can see it
            assert fast.message == "frame checksum mismatch (index)", (bit, fast)
            new += 1
        else:
            assert fast == slow, bit
    assert new < 10


def test_cuts_are_reported_as_the_sequential_reader_reports_them(
        packed: tuple[bytes, list[Event]], tmp_path: pathlib.Path) -> None:
    data, _ = packed
    path = tmp_path / "cut.replay"
    for cut in random.Random(SEED).sample(range(len(data)), 60):
        path.write_bytes(data[:cut])
        fast, _ = run(path, fast=True)
        slow, _ = run(path, fast=False)
        assert fast == slow and fast.status == "truncated" and fast.offset == cut


def test_a_corrupt_frame_in_the_middle_is_found_at_its_offset(
        packed: tuple[bytes, list[Event]], tmp_path: pathlib.Path) -> None:
    data, _ = packed
    path = tmp_path / "middle.replay"
    path.write_bytes(data)
    table = frames_of(path)
    k = len(table["off"]) // 2
    off, ln = table["off"][k], table["len"][k]
    damaged = bytearray(data)
    damaged[off + ln // 2] ^= 0x10
    path.write_bytes(damaged)
    report = verify(path)
    assert report.status == "corrupt"
    assert report.offset is not None and off <= report.offset <= off + ln
    before = sum(1 for _ in iter_events_before(data, tmp_path, off))
    assert before <= report.events_read < N
    assert run(path, fast=False)[0] == report


def iter_events_before(data: bytes, tmp_path: pathlib.Path, off: int) -> list[Event]:
    """The events of the frames before file offset ``off`` (those of an intact copy)."""
    path = tmp_path / "intact.replay"
    path.write_bytes(data)
    table = frames_of(path)
    k = list(table["off"]).index(off)
    end_raw = table["raw"][k]
    from replay._cassette import read_cassette
    log = read_cassette(path).events
    cols = log._cols  # type: ignore[attr-defined]
    return [log[i] for i in range(len(log)) if cols["pos"][i] < end_raw]


def test_malformed_msgpack_inside_a_valid_crc(packed: tuple[bytes, list[Event]],
                                              tmp_path: pathlib.Path) -> None:
    """A record whose CRC and frame are right but whose msgpack is not: corrupt, at the
    frame holding it, after every event before it."""
    data, evs = packed
    path = tmp_path / "msgpack.replay"
    path.write_bytes(data)
    k = len(frames_of(path)["off"]) // 2
    seen: dict[str, int] = {}

    def edit(j: int, body: bytes) -> bytes:
        if j != k:
            return body
        for at, payload in records(body):
            m = msgpack.unpackb(payload, raw=False, strict_map_key=False,
                                ext_hook=lambda c, d: None)
            if m.get("k") == "ev" and m["channel"] == "tool:fetch":
                seen["seq"] = m["seq"]
                bad = payload.replace(b"\xa7request", b"\xa7request"[:-1] + b"\xc1", 1)
                return refit(body, at, bad)
        raise AssertionError("no event in the frame")

    repack(path, frame=edit)
    fast = verify(path)
    assert fast.status == "corrupt"
    assert "bad record" in fast.message
    assert fast.events_read == next(i for i, e in enumerate(evs) if e.seq == seen["seq"])
    table = frames_of(path)
    assert table["off"][k] <= fast.offset <= table["off"][k] + table["len"][k]  # type: ignore[operator]
    assert run(path, fast=False)[0] == fast
    with pytest.raises(CassetteCorruptError) as info:  # through the index: at the frame
        list(iter_events(path))
    assert (info.value.offset, info.value.events_read) == (table["off"][k], fast.events_read)


def test_an_index_row_that_disagrees_with_its_record(packed: tuple[bytes, list[Event]],
                                                     tmp_path: pathlib.Path) -> None:
    """Readers trust the index's columns (show, the TUI): verify compares every row."""
    data, _ = packed
    path = tmp_path / "row.replay"
    for col, code in (("seq", "q"), ("flags", "B"), ("task", "I"), ("start", "q"),
                      ("pos", "Q")):
        path.write_bytes(data)

        def edit(m: dict[str, Any], col: str = col, code: str = code) -> dict[str, Any]:
            a = array.array(code, m[col])
            assert m["first"] == 0 and len(m["tasks"]) > 1
            a[17] = 1 - a[17] if col == "task" else a[17] + 1
            return {**m, col: a.tobytes()}

        repack(path, index=edit)
        report = verify(path)
        assert report.status == "corrupt", col
        assert report.events_read == N
        if col == "pos":  # the offset points inside the record: no longer increasing
            assert report.message.startswith("bad index:"), report
        else:
            assert report.message == f"bad index: event 17's {col!r} column differs " \
                "from its record", report
        assert run(path, fast=False)[0].ok == (col != "pos")  # what verify missed before


def test_a_record_the_fast_path_leaves_to_the_decoder(tmp_path: pathlib.Path) -> None:
    """Blobs that are containers, events with errors and chunks, the end record: the
    decoder takes them inside a fast frame, and the file stays whole."""
    path = tmp_path / "mixed.replay"
    with CassetteWriter(path, golden_header()) as w:
        for i in range(60):
            w.write(make_event(i))
    fast, reader = run(path, fast=True)
    assert fast.ok and fast == run(path, fast=False)[0]
    assert reader.fast_frames == 1 and fast.blob_count > 10
