"""The memory-mapped journal and its zero tail (docs/cassette-format.md, "The zero tail").

A writer that is killed leaves the file as its map holds it: the records, then
zero bytes to the end of the last step it grew by. These tests take that image
from a live writer (what ``read()`` sees through the page cache is what a
SIGKILL leaves), tear its last record every way a cut-short copy can, flip
bits in it, and kill real writers: every acknowledged event is read back, the
zero tail is never taken as events, a torn record is reported truncated, and
damage before the tail is still corrupt.
"""

from __future__ import annotations

import os
import pathlib
import random
import signal
import subprocess
import sys

import pytest
from _format_child import golden_header, make_event

from replay._cassette import CassetteWriter, iter_events, journalmap, read_cassette
from replay._cassette.errors import (
    CassetteCorruptError,
    CassetteError,
    CassetteTruncatedError,
)
from replay._cassette.events import Event
from replay._cassette.index import BATCH
from replay._cassette.journalmap import MAP_FIRST, MAPPED, cut_zero_tail

pytestmark = pytest.mark.skipif(not MAPPED, reason="journals are not mapped on this platform")

N = 40


@pytest.fixture(autouse=True)
def _map_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Map every journal from its first record (writers map after MAP_AFTER bytes)."""
    monkeypatch.setattr(journalmap, "MAP_AFTER", 0)


def read(path: pathlib.Path) -> tuple[list[Event], CassetteError | None]:
    got: list[Event] = []
    try:
        for ev in iter_events(path):
            got.append(ev)
    except CassetteError as exc:
        return got, exc
    return got, None


def image(tmp_path: pathlib.Path, n: int) -> tuple[bytes, list[int]]:
    """The ``.partial`` of a live writer after ``n`` events, and each event's end
    offset in the file (the writer is then dropped)."""
    w = CassetteWriter(tmp_path / "live.replay", golden_header())
    ends = []
    for i in range(n):
        w.write(make_event(i))
        ends.append(w._base + w._pos)
        assert w.mapped
    data = pathlib.Path(w.partial_path).read_bytes()
    w.drop()
    return data, ends


def test_a_live_journal_ends_in_zeros_that_are_not_events(tmp_path: pathlib.Path) -> None:
    data, ends = image(tmp_path, N)
    assert len(data) > ends[-1] + 8 and not any(data[ends[-1]:]), "the map's zero tail"
    path = tmp_path / "img.replay"
    path.write_bytes(data)
    got, err = read(path)
    assert got == [make_event(i) for i in range(N)]
    assert isinstance(err, CassetteTruncatedError)
    assert err.offset == ends[-1]
    assert "zero framing" in err.reason


def test_every_interrupted_copy_of_the_last_append_is_truncated(tmp_path: pathlib.Path) -> None:
    """A kill inside an append's copy leaves its framing zero and any part of the rest
    (memcpy stores in 32-byte pieces, in an order of its choosing)."""
    data, ends = image(tmp_path, N)
    start, end = ends[-2], ends[-1]
    pieces = [(a, min(a + 32, end)) for a in range(start + 8, end, 32)]
    path = tmp_path / "torn.replay"
    rng = random.Random(7)
    kept_sets = [pieces[:k] for k in range(len(pieces) + 1)] + \
        [pieces[k:] for k in range(len(pieces))] + \
        [rng.sample(pieces, rng.randrange(len(pieces) + 1)) for _ in range(40)]
    for kept in kept_sets:
        torn = bytearray(data[:start]) + bytes(len(data) - start)
        for a, b in kept:
            torn[a:b] = data[a:b]
        path.write_bytes(torn)
        got, err = read(path)
        assert isinstance(err, CassetteTruncatedError), (kept, err)
        assert err.offset == start
        assert got == [make_event(i) for i in range(N - 1)]


def test_damage_before_the_zero_tail_is_corrupt(tmp_path: pathlib.Path) -> None:
    data, ends = image(tmp_path, N)
    path = tmp_path / "hole.replay"
    rng = random.Random(9)
    for _ in range(40):  # a hole in a record whose framing was written: not a torn copy
        k = rng.randrange(1, N)
        a = rng.randrange(ends[k - 1] + 8, ends[k] - 1)
        b = rng.randrange(a + 1, ends[k])
        damaged = bytearray(data)
        damaged[a:b] = bytes(b - a)
        if damaged == bytearray(data):
            continue
        path.write_bytes(damaged)
        got, err = read(path)
        assert isinstance(err, CassetteCorruptError), (a, b, err)
        assert got == [make_event(i) for i in range(k)]


def test_bit_flips_in_the_zero_tail_are_reported(tmp_path: pathlib.Path) -> None:
    data, ends = image(tmp_path, N)
    path = tmp_path / "flip.replay"
    rng = random.Random(11)
    for byte in [*range(ends[-1], ends[-1] + 8), len(data) - 1,
                 *rng.sample(range(ends[-1], len(data)), 20)]:
        damaged = bytearray(data)
        damaged[byte] ^= 1 << rng.randrange(8)
        path.write_bytes(damaged)
        got, err = read(path)
        assert got == [make_event(i) for i in range(N)], byte
        if byte < ends[-1] + 8:  # the framing of a record that is not there
            assert err is not None and "zero framing" not in err.reason, (byte, err)
        else:  # after the zero framing: the journal's end, as without the flip
            assert isinstance(err, CassetteTruncatedError) and err.offset == ends[-1]


def test_records_that_end_in_zero_bytes_are_read_whole(tmp_path: pathlib.Path) -> None:
    """An ``ix`` record's columns end in zero bytes: killed right after one, the
    journal's last record ends in zeros that are its own."""
    data, ends = image(tmp_path, BATCH)
    assert data[ends[-1] - 1] == 0, "the batch's ix record ends in a zero byte"
    path = tmp_path / "ix.replay"
    path.write_bytes(data)
    got, err = read(path)
    assert len(got) == BATCH and isinstance(err, CassetteTruncatedError)
    assert err.offset == ends[-1]


def test_ended_and_closed_journals_are_cut_to_their_records(tmp_path: pathlib.Path) -> None:
    w = CassetteWriter(tmp_path / "a.replay", golden_header())
    for i in range(N):
        w.write(make_event(i))
    w.end()
    size = os.path.getsize(w.partial_path)
    assert size == w._base + w._pos and not w.mapped
    # killed after end(), before its cut: a complete journal with a zero tail
    with open(w.partial_path, "ab") as f:
        f.write(bytes(MAP_FIRST))
    assert list(read_cassette(w.partial_path).events) == [make_event(i) for i in range(N)]
    with open(w.partial_path, "r+b") as f:  # and a byte that is not zero after it
        f.seek(size + 100)
        f.write(b"\x01")
    with pytest.raises(CassetteCorruptError, match="bytes after the end record"):
        read_cassette(w.partial_path)
    os.truncate(w.partial_path, size)
    w.close()
    assert list(read_cassette(tmp_path / "a.replay").events) == [make_event(i) for i in range(N)]
    aborted = CassetteWriter(tmp_path / "b.replay", golden_header())
    aborted.write(make_event(0))
    aborted.abort()
    data = pathlib.Path(aborted.partial_path).read_bytes()
    assert len(data) == aborted._base + aborted._pos  # no zero tail after abort


def test_the_map_grows_and_a_failed_step_falls_back_to_write(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = CassetteWriter(tmp_path / "g.replay", golden_header())
    n = 0
    while w._pos < 3 * MAP_FIRST:  # two steps at least
        w.write(make_event(n))
        n += 1
    assert w.mapped

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "posix_fallocate", full)
    while w.mapped:
        w.write(make_event(n))
        n += 1
    for _ in range(10):  # on with write(), after the records
        w.write(make_event(n))
        n += 1
    w.close()
    assert list(read_cassette(tmp_path / "g.replay").events) == [make_event(i) for i in range(n)]


def test_a_step_is_written_with_zeros_before_it_is_mapped(tmp_path: pathlib.Path) -> None:
    """journalmap._fill: zeros over exactly the step (its pages in the page cache as
    written data, so stores into the map take no conversion fault), the bytes before
    and after it untouched; a file opened for appending is left alone (pwrite
    would append there)."""
    path = tmp_path / "f"
    path.write_bytes(b"\x01" * 10 + b"\x02" * 600_000 + b"\x03" * 10)
    fd = os.open(path, os.O_RDWR)
    try:
        journalmap._fill(fd, 10, 600_000)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"\x01" * 10 + bytes(600_000) + b"\x03" * 10
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    try:
        journalmap._fill(fd, 0, 100)
    finally:
        os.close(fd)
    assert path.stat().st_size == 600_020 and path.read_bytes()[:10] == b"\x01" * 10


def test_a_step_whose_zeros_cannot_be_written_falls_back_to_write(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = CassetteWriter(tmp_path / "z.replay", golden_header())
    n = 0
    while w._pos < 3 * MAP_FIRST:
        w.write(make_event(n))
        n += 1
    assert w.mapped

    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "pwrite", full)
    while w.mapped and w._pos < 64 * MAP_FIRST:  # the next step fails: unmapped
        w.write(make_event(n))
        n += 1
    assert not w.mapped
    for _ in range(10):
        w.write(make_event(n))
        n += 1
    w.close()
    assert list(read_cassette(tmp_path / "z.replay").events) == [make_event(i) for i in range(n)]


def _mapped_rss_kb(path: pathlib.Path) -> int:
    """Resident kB of this process's mappings of ``path`` (/proc/self/smaps)."""
    total, inside = 0, False
    target = str(path)
    for line in pathlib.Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and not line.startswith(("Rss", "Size")):
            inside = line.rstrip().endswith(target)
        elif inside and line.startswith("Rss:"):
            total += int(head[1])
    return total


@pytest.mark.skipif(not pathlib.Path("/proc/self/smaps").exists(), reason="needs /proc")
def test_a_growing_map_gives_back_the_pages_it_wrote_and_keeps_their_records(
        tmp_path: pathlib.Path) -> None:
    """Each growth step releases the written pages (MADV_DONTNEED): the writer's
    resident size stays near one step whatever the journal's length (a 1M-event
    run mapped whole held ~700 MB), and the records stay in the file."""
    w = CassetteWriter(tmp_path / "r.replay", golden_header())
    n = 0
    while w._pos < 40 * MAP_FIRST:  # ~2.6 MB of records, several growth steps
        w.write(make_event(n))
        n += 1
    assert w.mapped
    resident = _mapped_rss_kb(tmp_path / "r.replay.partial")
    assert resident * 1024 < w._pos // 2, (resident, w._pos)  # not the whole journal
    live = (tmp_path / "r.replay.partial").read_bytes()  # through the page cache: all there
    assert live.count(b"\0" * 8) >= 1  # its zero tail, as a kill would leave it
    w.close()
    assert list(read_cassette(tmp_path / "r.replay").events) == [make_event(i) for i in range(n)]


def _env(here: str) -> dict[str, str]:
    """This environment, with the checkout first on the path (as the tests import it)."""
    root = str(pathlib.Path(here).parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


_FORKED = """
import os, sys
sys.path.insert(0, sys.argv[2])
from _format_child import golden_header, make_event
from replay._cassette import CassetteWriter, journalmap
journalmap.MAP_AFTER = 0
w = CassetteWriter(sys.argv[1], golden_header())
w.write(make_event(0))
assert w.mapped
pid = os.fork()
if pid == 0:
    try:
        w.write(make_event(99))
        code = 3
    except ValueError:
        code = 0
    w.close()  # nothing: the journal is the parent's
    os._exit(code)
_, status = os.waitpid(pid, 0)
w.write(make_event(1))
w.close()
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_cannot_write_or_close_its_parents_journal(
        tmp_path: pathlib.Path) -> None:
    path = tmp_path / "fork.replay"
    here = str(pathlib.Path(__file__).parent)
    res = subprocess.run([sys.executable, "-c", _FORKED, str(path), here], timeout=60,
                         env=_env(here))
    assert res.returncode == 0
    assert list(read_cassette(path).events) == [make_event(0), make_event(1)]


_KILLED = """
import sys
sys.path.insert(0, sys.argv[2])
from _format_child import golden_header, make_event
from replay._cassette import CassetteWriter, journalmap
journalmap.MAP_AFTER = 0
w = CassetteWriter(sys.argv[1], golden_header())
sys.stdout.write("ready\\n")
sys.stdout.flush()
i = 0
while True:
    w.write(make_event(i))
    sys.stdout.write(f"ack {i}\\n")
    sys.stdout.flush()
    i += 1
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("after", [0, 3, 700])
def test_a_killed_mapped_writer_keeps_every_acknowledged_event(
        tmp_path: pathlib.Path, after: int) -> None:
    path = tmp_path / "killed.replay"
    here = str(pathlib.Path(__file__).parent)
    child = subprocess.Popen([sys.executable, "-c", _KILLED, str(path), here],
                             stdout=subprocess.PIPE, env=_env(here))
    assert child.stdout is not None
    acked = 0
    try:
        assert child.stdout.readline() == b"ready\n"
        while acked < after:
            assert child.stdout.readline() == f"ack {acked}\n".encode()
            acked += 1
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        acked += child.stdout.read().count(b"ack")
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
    partial = pathlib.Path(str(path) + ".partial")
    data = partial.read_bytes()
    got, err = read(partial)
    assert isinstance(err, CassetteTruncatedError), err
    assert got == [make_event(i) for i in range(len(got))]
    assert acked <= len(got) <= acked + 1
    if got:
        assert data.endswith(b"\0" * 64), "killed while mapped: the zero tail is in the file"


def test_index_columns_split_from_interleaved_rows_keep_every_value() -> None:
    """Batch keeps rows interleaved and narrows the u32 and u8 columns by their bytes:
    every value, at the edges of each column's range, comes back from the record."""
    from replay._cassette import index as ix

    rng = random.Random(5)
    batch = ix.Batch()
    rows = []
    for _ in range(3000):
        row = (rng.randrange(-2**63, 2**63), rng.randrange(2**63), rng.randrange(-2**62, 2**62),
               rng.randrange(2**62), rng.choice([-1, rng.randrange(2**63)]),
               rng.choice([0, 2**32 - 1, rng.randrange(2**32)]),
               rng.choice([0, 2**32 - 1, rng.randrange(2**32)]), rng.randrange(256))
        rows.append(row)
        batch.add_row(*row)
    m = batch.record()
    assert len(batch) == 0 and m["n"] == len(rows)
    for k, (name, code) in enumerate(ix.EVENT_COLUMNS.items()):
        assert list(ix.from_bin(code, m[name], len(rows), name)) == [r[k] for r in rows], name


def test_a_leftovers_zero_tail_is_cut_and_nothing_else(tmp_path: pathlib.Path) -> None:
    data, ends = image(tmp_path, N)
    path = tmp_path / "left.replay.partial"
    path.write_bytes(data)
    assert cut_zero_tail(str(path)) == ends[-1] == path.stat().st_size
    assert read(path)[0] == [make_event(i) for i in range(N)]
    assert cut_zero_tail(str(path)) == ends[-1]  # nothing more to cut
    torn = bytearray(data)
    torn[ends[-1] + 20] = 1  # a copy that a kill interrupted: kept for a person to see
    path.write_bytes(torn)
    assert cut_zero_tail(str(path)) == len(data)
    w = CassetteWriter(tmp_path / "done.replay", golden_header())
    w.write(make_event(0))
    w.close()
    done = tmp_path / "done.replay"
    before = done.read_bytes()
    assert cut_zero_tail(str(done)) == len(before) and done.read_bytes() == before  # packed


def test_a_short_journal_is_written_and_a_long_one_mapped_from_where_it_is(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journalmap, "MAP_AFTER", 4096)
    w = CassetteWriter(tmp_path / "s.replay", golden_header())
    n = 0
    while w._pos < 4096:
        w.write(make_event(n))
        n += 1
        assert not w.mapped or w._pos >= 4096
        assert os.path.getsize(w.partial_path) == w._base + w._pos or w.mapped
    w.write(make_event(n))  # the first append past MAP_AFTER goes through the map
    n += 1
    assert w.mapped and os.path.getsize(w.partial_path) > w._base + w._pos
    data = pathlib.Path(w.partial_path).read_bytes()
    path = tmp_path / "img.replay"
    path.write_bytes(data)
    got, err = read(path)  # a kill now: the written part, then the mapped part
    assert got == [make_event(i) for i in range(n)] and isinstance(err, CassetteTruncatedError)
    w.close()
    assert list(read_cassette(tmp_path / "s.replay").events) == [make_event(i) for i in range(n)]
