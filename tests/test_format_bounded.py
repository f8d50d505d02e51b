"""Readers stay bounded (issue 12): a decoded-bytes budget, values per record.

A cassette of a few KB can declare gigabytes: 40 blobs of 32 MiB of one
letter, an array of 30 million nils, blobs that refer to each other until a
value expands 16^30 times. Each hostile file is generated here, and each
reader (``verify``, ``read_cassette``, ``iter_events`` and ``replay show``)
reads every one of them, and every bomb of test_format_hostile.py, in a fresh
interpreter that reports its peak RSS growth (VmHWM after minus VmRSS before,
as in test_format_hostile.py): under 100 MB, with the documented outcome.
"""

from __future__ import annotations

import functools
import json
import pathlib
import subprocess
import sys
from collections.abc import Callable

import crc32c
import msgpack
import pytest
from _format_child import golden_header, make_event
from test_format_hostile import (
    BOMBS,
    HEADER,
    ROOT,
    ZSTD_MAGIC,
    blob,
    cassette,
    ev,
    ev_raw_request,
    framed,
    trailer,
)

from replay._cassette import (
    CassetteWriter,
    Header,
    Limits,
    encode_header,
    iter_events,
    read_cassette,
    verify,
)
from replay._cassette.codec import (
    DEFAULT_MAX_VALUES,
    RecordTooLargeError,
    count_values,
    pack_plain,
)
from replay._cassette.errors import CassetteCorruptError, CassetteLimitError
from replay._cassette.events import Event

MB = 1024 * 1024
BLOCK = 128 * 1024  # zstd's largest block


def ref(ident: int) -> msgpack.ExtType:
    return msgpack.ExtType(1, ident.to_bytes(1 if ident < 256 else 2, "big"))


# -- the hostile files, generated -------------------------------------------------
# The big ones are built as zstd frames of raw and RLE blocks, as a hostile
# writer would: nothing of their gigabytes is ever in memory here.

Run = tuple[int, int]  # (byte, count): that byte, repeated


def zstd_frame(parts: list[bytes | Run]) -> bytes:
    """One zstd frame (2 MiB window, no checksum) holding ``parts`` in order."""
    blocks = []
    for part in parts:
        if isinstance(part, bytes):
            blocks += [(0, part[i:i + BLOCK], len(part[i:i + BLOCK]))
                       for i in range(0, len(part), BLOCK)]
        else:
            byte, count = part
            blocks += [(1, bytes([byte]), min(BLOCK, count - i)) for i in range(0, count, BLOCK)]
    out = [ZSTD_MAGIC, b"\x00\x58"]
    for n, (btype, body, size) in enumerate(blocks):
        last = n == len(blocks) - 1
        out += [(size << 3 | btype << 1 | last).to_bytes(3, "little"), body]
    return b"".join(out)


@functools.cache
def _crc_of(prefix: bytes, byte: int, count: int) -> int:
    return crc32c.crc32c(bytes([byte]) * count, crc32c.crc32c(prefix))


def record(prefix: bytes, run: Run, suffix: bytes) -> list[bytes | Run]:
    """A framed record whose payload is ``prefix``, the run, then ``suffix``."""
    size = len(prefix) + run[1] + len(suffix)
    crc = crc32c.crc32c(suffix, _crc_of(prefix, *run))
    return [size.to_bytes(4, "little") + crc.to_bytes(4, "little") + prefix, run, suffix]


def file_of(records: list[list[bytes | Run]], events: int, blobs: int) -> bytes:
    end = framed(msgpack.packb({"k": "end", "events": events, "blobs": blobs}))
    z = zstd_frame([part for r in records for part in r] + [end])
    return HEADER + z + trailer(z)


def blobs_of_text() -> bytes:
    """40 blob records of 32 MiB of one letter: 42 KB on disk, 1.3 GB decoded."""
    size = 32 * MB - 64
    head = b"\x83\xa1k\xa4blob\xa1v\xdb" + size.to_bytes(4, "big")
    return file_of([record(head, (0x61, size), b"\xa2id" + msgpack.packb(i))
                    for i in range(40)], 0, 40)


def event_head(**fields: object) -> bytes:
    """The msgpack of an event map without its last value, which is ``request``."""
    m = {"k": "ev", **make_event(0).to_map(), **fields}
    del m["request"]
    data = msgpack.packb({**m, "request": None})
    return data[:-1]  # the nil of "request", packed last


def events_of_text() -> bytes:
    """10 events of 32 MiB of text inline (streaming readers keep none of them)."""
    size = 32 * MB - 1024
    return file_of([record(event_head(seq=i) + b"\xdb" + size.to_bytes(4, "big"),
                           (0x61, size), b"") for i in range(10)], 10, 0)


def array_of_nils() -> bytes:
    """One 1.3 KB record (30 MB decompressed) holding an array of 30 million nils."""
    n = 30_000_000
    return file_of([record(event_head() + b"\xdd" + n.to_bytes(4, "big"), (0xC0, n), b"")],
                   1, 0)


def dense_blobs() -> bytes:
    """50 blob records of 400,000 empty maps each: each under the values limit,
    29 MB decoded, and all kept (blobs)."""
    n = 400_000
    head = b"\x83\xa1k\xa4blob\xa1v\xdd" + n.to_bytes(4, "big")
    return file_of([record(head, (0x80, n), b"\xa2id" + msgpack.packb(i)) for i in range(50)],
                   0, 50)


def header_of_values() -> bytes:
    """A header map (under its 1 MiB limit) of a million empty maps."""
    header = Header("2024-01-01T00:00:00Z", ("a",), "CPython", "x", {"m": [{}] * 1_000_000})
    return cassette([ev()], header=encode_header(header, limit=2 * MB))


def expanding_refs() -> bytes:
    """Blob k holds 16 references to blob k-1, 30 deep: 11 KB of file, shared in
    memory, but 300 * 16^30 bytes to print, hash or compare."""
    payloads = [blob(0, "x" * 300)]
    payloads += [blob(k, [ref(k - 1)] * 16) for k in range(1, 31)]
    return cassette([*payloads, ev(request=ref(30))])


def nested_deep() -> bytes:
    """An array nested 100,000 deep (msgpack's decoder stops at 1024)."""
    return cassette([ev_raw_request(b"\x91" * 100_000 + b"\xc0")])


# What each reader must say: "complete", or the CassetteError kind. verify keeps
# no str/bytes payload and iter_events no event, so they read some files whole.
LIMIT, CORRUPT, OK = "over limit", "corrupt", "complete"
HOSTILE: dict[str, tuple[Callable[[], bytes], dict[str, str]]] = {
    "40 blobs of 32 MiB text": (blobs_of_text, {"verify": OK, "iter": LIMIT, "read": LIMIT}),
    "10 events of 32 MiB text": (events_of_text, {"verify": OK, "iter": OK, "read": LIMIT}),
    "array of 30M nils": (array_of_nils, {"verify": LIMIT, "iter": LIMIT, "read": LIMIT}),
    "50 blobs of 400k empty maps": (dense_blobs, {"verify": LIMIT, "iter": LIMIT,
                                                  "read": LIMIT}),
    "header of a million maps": (header_of_values, {"verify": LIMIT, "iter": LIMIT,
                                                    "read": LIMIT}),
    "references expanding 16^30 times": (expanding_refs, {"verify": LIMIT, "iter": LIMIT,
                                                          "read": LIMIT}),
    "array nested 100k deep": (nested_deep, {"verify": CORRUPT, "iter": CORRUPT,
                                             "read": CORRUPT}),
}

# -- one reader over one file, in a fresh interpreter -----------------------------

PROBE = """
import collections, io, json, os, sys, time, types
root, path, mode = sys.argv[1:4]
if mode == "show":  # the whole command, as a user runs it
    sys.path.insert(0, root)
    from replay._cli import main
else:  # layer 1 only: a small, quiet baseline
    pkg = types.ModuleType("replay")
    pkg.__path__ = [os.path.join(root, "replay")]
    sys.modules["replay"] = pkg
from replay._cassette import iter_events, read_cassette, verify
from replay._cassette.errors import CassetteError

def status_kb(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))

before = status_kb("VmRSS")
t = time.perf_counter()
result = {"outcome": "complete", "reason": ""}
try:
    if mode == "verify":
        report = verify(path)
        result = {"outcome": report.status, "reason": report.message}
    elif mode == "iter":  # holding no event (a loop variable would hold one)
        collections.deque(iter_events(path), maxlen=0)
    elif mode == "read":
        read_cassette(path)
    else:
        out, err = sys.stdout, sys.stderr
        sys.stderr = io.StringIO()
        with open(os.devnull, "w") as sys.stdout:
            code = main(["show", path])
        result = {"outcome": code, "reason": sys.stderr.getvalue()}
        sys.stdout, sys.stderr = out, err
except CassetteError as exc:
    result = {"outcome": exc.kind, "reason": exc.reason}
result["seconds"] = round(time.perf_counter() - t, 3)
result["peak_mb"] = round((status_kb("VmHWM") - before) / 1024, 1)
print(json.dumps(result))
"""


def probe(data: bytes, mode: str, tmp_path: pathlib.Path) -> dict[str, object]:
    path = tmp_path / "hostile.replay"
    path.write_bytes(data)
    out = subprocess.run([sys.executable, "-c", PROBE, ROOT, str(path), mode],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    result: dict[str, object] = json.loads(out)
    return result


@pytest.mark.parametrize("mode", ["verify", "iter", "read", "show"])
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_file_is_read_in_bounded_memory(name: str, mode: str,
                                                tmp_path: pathlib.Path) -> None:
    build, expected = HOSTILE[name]
    result = probe(build(), mode, tmp_path)
    print(f"\n{name} / {mode}: {result}")
    assert result["peak_mb"] < 100, result  # type: ignore[operator]
    if mode == "show":  # exits non-zero, naming the damage
        assert result["outcome"] != 0, result
        assert f"{expected['read']} at offset" in str(result["reason"]), result
    else:
        assert result["outcome"] == expected[mode], result
    if result["outcome"] not in (OK, 0):
        assert result["reason"], result


@pytest.mark.parametrize("mode", ["verify", "read", "show"])
@pytest.mark.parametrize("name", list(BOMBS))
def test_every_bomb_is_bounded_in_every_reader(name: str, mode: str,
                                               tmp_path: pathlib.Path) -> None:
    build, expected = BOMBS[name]
    result = probe(build(), mode, tmp_path)
    print(f"\n{name} / {mode}: {result}")
    assert result["peak_mb"] < 100, result  # type: ignore[operator]
    if mode == "show":
        assert result["outcome"] != 0, result
        assert f"{expected.kind} at offset" in str(result["reason"]), result
    else:
        assert result["outcome"] == expected.kind, result


# -- the limits, in process ---------------------------------------------------------

def write(path: pathlib.Path, events: list[Event], version: int = 1) -> None:
    """Version 1 by default: the budget tests are about readers that hold what they
    decode (version 1, a version 2 journal); a packed file decodes on demand."""
    with CassetteWriter(path, golden_header(), version=version) as w:
        for event in events:
            w.write(event)


def test_a_packed_file_checks_limits_as_it_decodes(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "values.replay"
    write(path, [Event(seq=0, channel="c", request=list(range(300)))], version=2)
    events = read_cassette(path, limits=Limits(max_record_values=100)).events
    with pytest.raises(CassetteLimitError) as info:
        events[0]
    assert "more than 100 msgpack values" in info.value.reason
    assert info.value.offset > len(HEADER)
    assert verify(path, limits=Limits(max_record_values=100)).status == "over limit"
    clock = tmp_path / "clock.replay"  # 20,000 events, read in a 1 MB budget
    write(clock, [Event(seq=i, channel="clock", request=None, response=1.7e9)
                  for i in range(20_000)], version=2)
    fixed = Limits(max_decoded_size=1 * MB, max_decoded_ratio=0)
    assert sum(1 for _ in read_cassette(clock, limits=fixed).events) == 20_000


def test_a_deep_array_says_why_it_is_corrupt(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "deep.replay"
    path.write_bytes(nested_deep())
    with pytest.raises(CassetteCorruptError) as info:
        list(iter_events(path))
    assert info.value.reason == "bad record: values nested more than 1024 deep"
    assert verify(path).message == info.value.reason
    path.write_bytes(cassette([ev_raw_request(b"\xc1")]))  # a reserved type byte
    with pytest.raises(CassetteCorruptError) as info:
        list(iter_events(path))
    assert info.value.reason == "bad record: not msgpack (a reserved type byte)"


def test_values_per_record_are_limited(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "values.replay"
    write(path, [Event(seq=0, channel="c", request=list(range(300)))])
    assert len(read_cassette(path).events) == 1
    with pytest.raises(CassetteLimitError) as info:
        read_cassette(path, limits=Limits(max_record_values=100))
    assert "more than 100 msgpack values" in info.value.reason
    assert info.value.offset > len(HEADER)
    assert verify(path, limits=Limits(max_record_values=100)).status == "over limit"


def test_the_writer_refuses_what_readers_refuse(tmp_path: pathlib.Path) -> None:
    w = CassetteWriter(tmp_path / "w.replay", golden_header())
    with pytest.raises(RecordTooLargeError, match="msgpack values"):
        w.write(Event(seq=0, channel="tool:t", request=None,
                      response=[None] * (DEFAULT_MAX_VALUES + 1)))
    w.write(Event(seq=0, channel="tool:t", request=None,
                  response=[None] * (DEFAULT_MAX_VALUES - 100)))
    w.close()
    assert len(read_cassette(tmp_path / "w.replay").events[0].response) \
        == DEFAULT_MAX_VALUES - 100  # type: ignore[arg-type]


def test_count_values_counts_what_msgpack_builds() -> None:
    cases: list[tuple[object, int]] = [
        (None, 1), ([], 1), ({}, 1), ([1, "a", b"b", 1.5, None, True], 7),
        ({"a": [1, 2], "b": {"c": None}}, 9), ("x" * 70000, 1), (b"y" * 300, 1),
        ([[[]] * 3] * 2, 9), (2**70, 1), (((1, 2), ()), 8), ({"t": (1,)}, 5),
        ([{}] * 70000, 70001), ({i: i for i in range(20000)}, 40001),
    ]
    for value, expected in cases:
        data = pack_plain(value)
        assert count_values(data, 10**6) == expected, value
        assert count_values(data, 3) == min(expected, 4), value
    assert count_values(b"\xc1" * 10, 100) == 1  # malformed: stops


def test_the_budget_counts_what_each_reader_keeps(tmp_path: pathlib.Path) -> None:
    texts = tmp_path / "texts.replay"  # 4 blobs of 300 KB of text
    write(texts, [Event(seq=i, channel="tool:t", request=None, response=chr(97 + i) * 300_000)
                  for i in range(4)])
    budget = Limits(max_decoded_size=1_000_000, max_decoded_ratio=0)
    assert verify(texts, limits=budget).ok  # verify keeps no text
    with pytest.raises(CassetteLimitError) as info:
        list(iter_events(texts, limits=budget))  # iter_events keeps every blob
    assert info.value.events_read == 2
    assert "budget" in info.value.reason
    small = tmp_path / "small.replay"  # 200 events of 100 values each, no blob
    write(small, [Event(seq=i, channel="c", request=list(range(100))) for i in range(200)])
    assert sum(1 for _ in iter_events(small, limits=budget)) == 200
    with pytest.raises(CassetteLimitError):  # read_cassette keeps the events too
        read_cassette(small, limits=budget)
    assert len(read_cassette(small, limits=Limits(max_decoded_size=2_500_000,
                                                  max_decoded_ratio=0)).events) == 200


def test_a_record_may_not_expand_past_the_budget(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "refs.replay"
    path.write_bytes(expanding_refs())
    with pytest.raises(CassetteLimitError) as info:
        read_cassette(path)
    assert "references resolved" in info.value.reason
    assert info.value.offset > len(HEADER)


def test_the_budget_grows_with_the_file(tmp_path: pathlib.Path) -> None:
    """Recordings decode to ~60 times their size at most (clock reads that never
    change, the most repetitive run there is, to 72 times); the default ratio
    of 256 leaves room, and a large file is not held to the fixed budget."""
    path = tmp_path / "clock.replay"
    write(path, [Event(seq=i, channel="clock", request=None, response=1.7e9, start_ns=0)
                 for i in range(20_000)])
    fixed = Limits(max_decoded_size=1 * MB, max_decoded_ratio=0)
    with pytest.raises(CassetteLimitError):
        read_cassette(path, limits=fixed)
    assert len(read_cassette(path, limits=Limits(max_decoded_size=1 * MB,
                                                 max_decoded_ratio=100)).events) == 20_000
    golden = pathlib.Path(ROOT) / "fixtures" / "golden"
    for cassette_path in sorted(golden.glob("*.replay")):
        read_cassette(cassette_path, limits=Limits(max_decoded_size=0, max_decoded_ratio=64))
