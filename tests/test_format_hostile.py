"""Hostile and malformed cassettes: the documented error, bounded memory.

Bombs run in a fresh interpreter that reports its peak RSS growth while
reading: VmHWM after minus VmRSS before. (That is the peak ``ru_maxrss``
reports, but for this process image only: on Linux ``ru_maxrss`` of a child
also keeps the peak of the forked copy of the test runner from before exec.)
Crafted malformed files run here.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import subprocess
import sys

import crc32c
import msgpack
import pytest
import zstandard
from _format_child import golden_header, make_event

from replay._cassette import MAGIC, encode_header, iter_events, read_header, verify
from replay._cassette.errors import (
    CassetteCorruptError,
    CassetteError,
    CassetteLimitError,
    CassetteTruncatedError,
    CassetteVersionError,
)

ROOT = str(pathlib.Path(__file__).resolve().parents[1])
HEADER = encode_header(golden_header(), version=1)
"""A version 1 header: the bombs are zstd frames, version 1's body."""
VERSIONS = pytest.mark.parametrize("version", [1, 2], ids=["v1", "v2-journal"])
"""Crafted records are checked in a version 1 frame and in a version 2 journal (the
same records, uncompressed; packed files: tests/test_format_packed_records.py)."""
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MB = 1024 * 1024


def framed(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "little") + crc32c.crc32c(payload).to_bytes(4, "little") \
        + payload


def frame(records: list[bytes]) -> bytes:
    """A proper zstd frame (block per record) holding these framed records."""
    c = zstandard.ZstdCompressor(write_checksum=True).compressobj()
    out = b"".join(c.compress(r) + c.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) for r in records)
    return out + c.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)


def trailer(zframe: bytes) -> bytes:
    return b"ARPE" + len(zframe).to_bytes(8, "little") + crc32c.crc32c(zframe).to_bytes(4,
                                                                                        "little")


def cassette(payloads: list[bytes], *, end: bool = True, header: bytes = HEADER,
             version: int = 1) -> bytes:
    """A complete, checksummed cassette around arbitrary record payloads (version 2:
    a journal, which holds the same records uncompressed)."""
    def kind(p: bytes) -> object:
        try:
            m = msgpack.unpackb(p, strict_map_key=False, ext_hook=lambda c, d: None)
        except ValueError:
            return None
        return m.get("k") if isinstance(m, dict) else None

    events = sum(1 for p in payloads if kind(p) == "ev")
    blobs = len(payloads) - events
    if end:
        payloads = [*payloads, msgpack.packb({"k": "end", "events": events, "blobs": blobs})]
    if version == 2:
        return encode_header(golden_header()) + b"JRNL" + b"".join(map(framed, payloads))
    z = frame([framed(p) for p in payloads])
    return header + z + trailer(z)


def ev(**fields: object) -> bytes:
    return msgpack.packb({"k": "ev", **make_event(0).to_map(), **fields})


def ev_raw_request(raw: bytes) -> bytes:
    """An event record whose request is the msgpack bytes ``raw``, spliced in."""
    packed = ev(request=None)
    assert packed.count(b"\xa7request\xc0") == 1
    return packed.replace(b"\xa7request\xc0", b"\xa7request" + raw)


def rle_blocks(byte: int, count: int) -> bytes:
    head = (128 * 1024) << 3 | 1 << 1  # RLE, not last, 128 KiB
    return (head.to_bytes(3, "little") + bytes([byte])) * count


# -- bombs, each in a fresh interpreter --------------------------------------

PROBE = """
import json, os, sys, time, types
pkg = types.ModuleType("replay")  # layer 1 only: a small, quiet baseline
pkg.__path__ = [os.path.join(sys.argv[1], "replay")]
sys.modules["replay"] = pkg
from replay._cassette import iter_events
from replay._cassette.errors import CassetteError

def status_kb(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))

before = status_kb("VmRSS")
t = time.perf_counter()
try:
    for _ in iter_events(sys.argv[2]):
        pass
    result = {"error": None}
except CassetteError as exc:
    result = {"error": type(exc).__name__, "offset": exc.offset, "reason": exc.reason}
result["seconds"] = round(time.perf_counter() - t, 4)
result["peak_mb"] = round((status_kb("VmHWM") - before) / 1024, 1)
print(json.dumps(result))
"""


def bomb_window() -> bytes:
    # window descriptor exponent 31: a 2 TiB window; then one RLE block
    return HEADER + ZSTD_MAGIC + b"\x00\xf8" + (1 | 1 << 1 | 8 << 3).to_bytes(3, "little") + b"A"


def bomb_content_size() -> bytes:
    # single-segment frame declaring 8 GiB of content (window = content size): 16 bytes
    return (HEADER + ZSTD_MAGIC + b"\xe0" + (8 << 30).to_bytes(8, "little")
            + (1 | 1 << 1 | (128 * 1024) << 3).to_bytes(3, "little"))


def bomb_content_size_small_window() -> bytes:
    # declares 8 GiB of content with a 1 KiB window; RLE blocks of zeros follow
    return (HEADER + ZSTD_MAGIC + b"\xc0\x00" + (8 << 30).to_bytes(8, "little")
            + ((1024 << 3) | 1 << 1).to_bytes(3, "little") + b"\x00")


def bomb_array() -> bytes:
    return HEADER + frame([framed(b"\xdd\x80\x00\x00\x00" + b"\xc0" * 64)])


def bomb_timestamp_ext() -> bytes:
    # ext32 of type -1 (Timestamp) declaring 4 GiB - 16 bytes of data
    return HEADER + frame([framed(b"\x81\xa1k\xc9\xff\xff\xff\xf0\xff" + b"\x00" * 64)])


def bomb_timestamp_value() -> bytes:
    huge = msgpack.Timestamp(seconds=2**63 - 1, nanoseconds=999_999_999)
    return HEADER + frame([framed(msgpack.packb({"k": "ev", **make_event(0).to_map(),
                                                 "request": huge}))])


def bomb_random() -> bytes:
    return HEADER + random.Random(99).randbytes(MB)


def bomb_header_length() -> bytes:
    return MAGIC + b"\x01\x00" + b"\xff\xff\xff\xff" + b"\x00" * 64


def bomb_record_length() -> bytes:
    return HEADER + frame([b"\xff\xff\xff\xff\x00\x00\x00\x00" + b"\x00" * 64])


def bomb_rle() -> bytes:
    # 200,000 RLE blocks of 0x01: 25 GiB of output; the first "record" claims
    # 0x01010101 (16 MiB) bytes and fails its CRC once they have arrived
    return HEADER + ZSTD_MAGIC + b"\x00\x58" + rle_blocks(0x01, 200_000)


def bomb_rle_zeros() -> bytes:
    return HEADER + ZSTD_MAGIC + b"\x00\x58" + rle_blocks(0x00, 200_000)


def bomb_max_record() -> bytes:
    # one record just under the 32 MiB limit, with a correct CRC, of zeros
    size = 32 * MB - 1
    crc = crc32c.crc32c(bytes(size))
    head = size.to_bytes(4, "little") + crc.to_bytes(4, "little")
    raw = (len(head) << 3).to_bytes(3, "little") + head  # a raw block
    return HEADER + ZSTD_MAGIC + b"\x00\x58" + raw + rle_blocks(0x00, size // (128 * 1024) + 1)


HEADER2 = encode_header(golden_header())


def journal(body: bytes) -> bytes:
    return HEADER2 + b"JRNL" + body


def packed(v1_bomb: bytes) -> bytes:
    """A version 1 bomb's frame as the first frame of a packed version 2 body."""
    return HEADER2 + b"PACK" + v1_bomb[len(HEADER):]


BOMBS = {
    "2 TiB window": (bomb_window, CassetteLimitError),
    "8 GiB content, single segment": (bomb_content_size, CassetteLimitError),
    "8 GiB content, small window": (bomb_content_size_small_window, CassetteCorruptError),
    "array of 2^31 elements": (bomb_array, CassetteCorruptError),
    "4 GiB Timestamp ext": (bomb_timestamp_ext, CassetteCorruptError),
    "Timestamp value": (bomb_timestamp_value, CassetteCorruptError),
    "1 MiB random after header": (bomb_random, CassetteCorruptError),
    "4 GiB header length": (bomb_header_length, CassetteLimitError),
    "record length 2^32-1": (bomb_record_length, CassetteLimitError),
    "RLE bomb of 0x01": (bomb_rle, CassetteCorruptError),
    "RLE bomb of zeros": (bomb_rle_zeros, CassetteCorruptError),
    "32 MiB record of zeros": (bomb_max_record, CassetteCorruptError),
    "v2 journal: record length 2^32-1": (
        lambda: journal(b"\xff\xff\xff\xff\x00\x00\x00\x00" + b"\x00" * 64),
        CassetteLimitError),
    "v2 journal: array of 2^31 elements": (
        lambda: journal(framed(b"\xdd\x80\x00\x00\x00" + b"\xc0" * 64)), CassetteCorruptError),
    "v2 journal: 4 GiB Timestamp ext": (
        lambda: journal(framed(b"\x81\xa1k\xc9\xff\xff\xff\xf0\xff" + b"\x00" * 64)),
        CassetteCorruptError),
    "v2 packed: 2 TiB window": (lambda: packed(bomb_window()), CassetteLimitError),
    "v2 packed: 8 GiB content": (lambda: packed(bomb_content_size()), CassetteLimitError),
    "v2 packed: RLE bomb": (lambda: packed(bomb_rle()), CassetteCorruptError),
    "v2 packed: 1 MiB random": (lambda: packed(bomb_random()), CassetteCorruptError),
    "v2 packed: 32 MiB record of zeros": (lambda: packed(bomb_max_record()),
                                          CassetteCorruptError),
}


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmRSS from /proc")
@pytest.mark.parametrize("name", list(BOMBS))
def test_bomb_fails_cleanly_in_bounded_memory(name: str, tmp_path: pathlib.Path) -> None:
    build, expected = BOMBS[name]
    path = tmp_path / "bomb.replay"
    path.write_bytes(build())
    out = subprocess.run([sys.executable, "-c", PROBE, ROOT, str(path)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    result = json.loads(out)
    print(f"\n{name}: {result}")
    assert result["error"] == expected.__name__, result
    assert result["peak_mb"] < 100, result
    assert result["seconds"] < 10, result


# -- crafted malformed files, in process ---------------------------------------

def nested_tuples(depth: int) -> bytes:
    inner = b"\x90"
    for _ in range(depth):
        inner = msgpack.packb(msgpack.ExtType(2, b"\x91" + inner))
    return inner


def blob(ident: int, value: object) -> bytes:
    return msgpack.packb({"k": "blob", "id": ident, "v": value})


REF0 = msgpack.ExtType(1, b"\x00")


def case(payloads: list[bytes], *, end: bool = True) -> tuple[list[bytes], bool]:
    return payloads, end


MALFORMED = {
    "record after end": case([ev(), msgpack.packb({"k": "end", "events": 1, "blobs": 0}),
                                  ev()], end=False),
    "end counts wrong": case([ev(), msgpack.packb({"k": "end", "events": 2, "blobs": 0})],
                                 end=False),
    "no end record": case([ev()], end=False),
    "unknown record kind": case([msgpack.packb({"k": "note"})]),
    "record is a list": case([msgpack.packb(["ev"])]),
    "unknown ext code": case([ev(request=msgpack.ExtType(5, b""))]),
    "blob out of order": case([blob(1, "x")]),
    "ref before its blob": case([ev(request=REF0)]),
    "blob refers to itself": case([blob(0, REF0)]),
    "ref data of 3 bytes": case([blob(0, "x"), ev(request=msgpack.ExtType(1, b"\0\0\0"))]),
    "tuple ext not an array": case([ev(request=msgpack.ExtType(2, msgpack.packb(5)))]),
    "Timestamp in meta": case([ev(meta={"t": msgpack.Timestamp(1, 0)})]),
    "event without seq": case([msgpack.packb({"k": "ev", "channel": "c", "request": 1})]),
    "event with a str seq": case([ev(seq="1")]),
    "msgpack nested 5000 deep": case([ev_raw_request(b"\x91" * 5000 + b"\xc0")]),
    "tuples nested 9 deep": case([ev_raw_request(nested_tuples(9))]),
    "tuples nested 3000 deep": case([ev_raw_request(nested_tuples(3000))]),
}


@VERSIONS
def test_tuples_nested_8_deep_are_fine(version: int, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ok.replay"
    path.write_bytes(cassette([ev_raw_request(nested_tuples(8))], version=version))
    [event] = iter_events(path)
    expect: object = []
    for _ in range(8):
        expect = (expect,)
    assert event.request == expect


@VERSIONS
@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_content_is_corrupt(name: str, version: int, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad.replay"
    payloads, end = MALFORMED[name]
    path.write_bytes(cassette(payloads, end=end, version=version))
    # a journal without its end record is a recording that never finished: torn
    expected = CassetteTruncatedError if (version, name) == (2, "no end record") \
        else CassetteCorruptError
    with pytest.raises(expected) as info:
        list(iter_events(path))
    assert info.value.offset > len(HEADER)
    assert not info.value.reason.endswith(": "), "an error must say what is wrong"
    assert verify(path).status == info.value.kind


@VERSIONS
def test_msgpack_errors_that_have_no_message_get_one(version: int,
                                                     tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bad.replay"
    for raw, why in [(b"\x91" * 100_000 + b"\xc0", "values nested more than 1024 deep"),
                     (b"\xc1", "not msgpack (a reserved type byte)")]:
        path.write_bytes(cassette([ev_raw_request(raw)], version=version))
        with pytest.raises(CassetteCorruptError) as info:
            list(iter_events(path))
        assert info.value.reason == f"bad record: {why}"
        assert verify(path).message == info.value.reason


def test_header_checks(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "h.replay"
    body = msgpack.packb(golden_header().to_map())

    def header(version: int, m: bytes, magic: bytes = MAGIC) -> bytes:
        head = magic + version.to_bytes(2, "little") + len(m).to_bytes(4, "little")
        return head + m + crc32c.crc32c(m, crc32c.crc32c(head[8:])).to_bytes(4, "little")

    cases: list[tuple[bytes, type[CassetteError], int]] = [
        (header(3, body), CassetteVersionError, 8),
        (header(0, body), CassetteCorruptError, 8),
        (header(1, body, b"NOTACASS"), CassetteCorruptError, 0),
        (b"PK\x03\x04" + bytes(60), CassetteCorruptError, 0),
        (header(1, msgpack.packb({"created": "x"})), CassetteCorruptError, 14),
        (header(1, msgpack.packb([1])), CassetteCorruptError, 14),
        (header(1, msgpack.packb({**golden_header().to_map(), "meta": REF0})),
         CassetteCorruptError, 14),
        (header(1, msgpack.packb({**golden_header().to_map(),
                                  "meta": {"t": msgpack.Timestamp(1, 0)}})),
         CassetteCorruptError, 14),
    ]
    for data, cls, offset in cases:
        path.write_bytes(data + frame([]) + bytes(16))
        with pytest.raises(cls) as info:
            read_header(path)
        assert type(info.value) is cls and info.value.offset == offset, data[:20]
        with pytest.raises(cls):
            list(iter_events(path))
    path.write_bytes(header(3, body) + frame([]))
    assert verify(path).status == "unsupported version"
    assert verify(path).version is None


def test_trailer_checks(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "t.replay"
    good = cassette([ev()])
    path.write_bytes(good)
    assert verify(path).ok
    for data, offset in [(good + b"\x00", len(good)),
                         (good[:-16] + b"XRPE" + good[-12:], len(good) - 16),
                         (good[:-16] + trailer(b"") , len(good) - 12)]:
        path.write_bytes(data)
        with pytest.raises(CassetteCorruptError) as info:
            list(iter_events(path))
        assert info.value.offset == offset and info.value.events_read == 1
    # a second frame between the first and the trailer
    z = frame([framed(ev()), framed(msgpack.packb({"k": "end", "events": 1, "blobs": 0}))])
    path.write_bytes(HEADER + z + frame([]) + trailer(z))
    with pytest.raises(CassetteCorruptError):
        list(iter_events(path))


def test_record_checksum_offset_is_the_end_of_its_block(tmp_path: pathlib.Path) -> None:
    payloads = [ev(seq=i) for i in range(3)]
    records = [framed(p) for p in payloads]
    records[1] = records[1][:4] + bytes(4) + records[1][8:]  # zero CRC
    c = zstandard.ZstdCompressor(write_checksum=True).compressobj()
    blocks = [c.compress(r) + c.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) for r in records]
    z = b"".join(blocks) + c.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)
    path = tmp_path / "crc.replay"
    path.write_bytes(HEADER + z + trailer(z))
    with pytest.raises(CassetteCorruptError) as info:
        list(iter_events(path))
    assert info.value.events_read == 1
    assert info.value.offset == len(HEADER) + len(blocks[0]) + len(blocks[1])
    assert "checksum" in info.value.reason
