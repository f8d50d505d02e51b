"""Damaged cassettes: a golden file cut at every byte and hit by 10,000 bit flips.

For every damaged copy: only CassetteError escapes, every event read is the
original event at that position (an exact prefix), and the damage is always
reported. Cuts must read as *truncated* at the cut, flips as *corrupt* (a
flip never passes for a torn tail or a limit: the trailer says the file was
finished, and its CRC says the frame is not what was written).
"""

from __future__ import annotations

import collections
import pathlib
import random

import pytest
from _format_child import golden_header, make_event

from replay._cassette import CassetteWriter, iter_events, verify
from replay._cassette.errors import CassetteCorruptError, CassetteError, CassetteTruncatedError
from replay._cassette.events import Event

N_EVENTS = 50
N_FLIPS = 10_000
SEED = 20240501


@pytest.fixture(scope="module", params=[1, 2], ids=["v1", "v2-packed"])
def golden(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[Event]]:
    path = tmp_path_factory.mktemp("golden") / "golden.replay"
    events = [make_event(i) for i in range(N_EVENTS)]
    with CassetteWriter(path, golden_header(), version=request.param) as w:
        for ev in events:
            w.write(ev)
    report = verify(path)
    assert report.ok and report.blob_count > 10  # repeated large content is shared
    return path.read_bytes(), events


def read_damaged(path: pathlib.Path, originals: list[Event]) -> CassetteError:
    """Read ``path`` to the end; return the error, checking the exact-prefix rule."""
    got: list[Event] = []
    error: CassetteError | None = None
    try:
        for ev in iter_events(path):
            assert ev == originals[len(got)], f"event {len(got)} differs from the original"
            got.append(ev)
    except CassetteError as exc:  # anything else fails the test
        error = exc
    assert error is not None, "damage went unreported"
    assert error.events_read == len(got)
    return error


class Scratch:
    """One file rewritten in place for each damaged copy (cheap)."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self._f = open(path, "wb")  # noqa: SIM115

    def put(self, data: bytes | bytearray) -> pathlib.Path:
        self._f.seek(0)
        self._f.write(data)
        self._f.truncate()
        self._f.flush()
        return self.path

    def close(self) -> None:
        self._f.close()


def test_every_cut_reads_as_truncated_prefix(golden: tuple[bytes, list[Event]],
                                             tmp_path: pathlib.Path) -> None:
    data, events = golden
    scratch = Scratch(tmp_path / "cut.replay")
    counts: collections.Counter[int] = collections.Counter()
    try:
        for cut in range(len(data)):
            err = read_damaged(scratch.put(data[:cut]), events)
            assert isinstance(err, CassetteTruncatedError), (cut, err)
            assert err.offset == cut
            counts[err.events_read] += 1
    finally:
        scratch.close()
    # cuts late in the file keep every event
    assert counts[N_EVENTS] > 0 and counts[0] > 0
    print(f"\n{len(data)} cuts of a {len(data)}-byte golden cassette: all truncated, "
          f"{counts[N_EVENTS]} kept all {N_EVENTS} events")


def test_random_bit_flips_are_reported(golden: tuple[bytes, list[Event]],
                                       tmp_path: pathlib.Path) -> None:
    data, events = golden
    rng = random.Random(SEED)
    bits = rng.sample(range(len(data) * 8), N_FLIPS)
    scratch = Scratch(tmp_path / "flip.replay")
    kinds: collections.Counter[str] = collections.Counter()
    try:
        for bit in bits:
            damaged = bytearray(data)
            damaged[bit // 8] ^= 1 << (bit % 8)
            err = read_damaged(scratch.put(damaged), events)
            assert isinstance(err, CassetteCorruptError), (bit, err)
            assert 0 <= err.offset <= len(data)
            kinds[err.kind] += 1
    finally:
        scratch.close()
    assert sum(kinds.values()) == N_FLIPS
    print(f"\n{N_FLIPS} single-bit flips (of {len(data) * 8} bits), all reported: {dict(kinds)}")


def test_flips_in_every_header_and_trailer_bit(golden: tuple[bytes, list[Event]],
                                               tmp_path: pathlib.Path) -> None:
    """Exhaustive where the file is not compressed: header and trailer."""
    data, events = golden
    header_size = 18 + int.from_bytes(data[10:14], "little")
    scratch = Scratch(tmp_path / "edge.replay")
    try:
        for byte in [*range(header_size), *range(len(data) - 16, len(data))]:
            for b in range(8):
                damaged = bytearray(data)
                damaged[byte] ^= 1 << b
                err = read_damaged(scratch.put(damaged), events)
                assert isinstance(err, CassetteCorruptError), (byte, b, err)
                if byte >= header_size:  # the trailer is checked after every event
                    assert err.events_read == N_EVENTS and err.offset >= byte - 15
    finally:
        scratch.close()
