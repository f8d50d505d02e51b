"""``verify`` with the second part of the frames checked by a child process
(replay/_cassette/framesplit.py).

Whatever the child vouches for, the report must be the sequential reader's:
every test compares the split path (``split_min=0``, a real child process
started as verify starts it) with ``fast=False`` on the same file, intact,
bit-flipped, cut, with index rows that lie and with budgets that only the
whole file passes.
"""

from __future__ import annotations

import array
import hashlib
import pathlib
import random
import subprocess
import sys
from typing import Any

import msgpack
import pytest
from _format_child import golden_header
from test_format_verify import (  # noqa: F401 - packed is a fixture
    SEED,
    frames_of,
    packed,
    repack,
    report_of,
    run,
)

from replay._cassette import CassetteWriter, Limits, VerifyReport
from replay._cassette.events import Event
from replay._cassette.framesplit import _CHILD, _ROOT
from replay._cassette.reader import _Reader

N = 2400


def tool_events() -> list[Event]:
    """A long run's shape (bench_scale.py): events of 500 bytes unlike any other, each a
    blob (the channel is not a tool's, whose events are written whole) that no record
    of another frame refers to; about 1.7 MB of records, 4 frames."""
    out = []
    for i in range(N):
        text = "".join(hashlib.blake2b(i.to_bytes(4, "little"), salt=bytes([s])).hexdigest()
                       for s in range(4))[:500]
        out.append(Event(seq=i, channel="fetch", request={"args": [i]}, response=text,
                         start_ns=i * 10, duration_ns=7, task=f"t{i % 3}"))
    return out


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("split") / "tools.replay"
    with CassetteWriter(path, golden_header()) as w:
        for ev in tool_events():
            w.write(ev)
    return path.read_bytes()


def split(path: pathlib.Path, at: int | None = None, limits: Limits | None = None
          ) -> tuple[VerifyReport, _Reader]:
    """verify's report with a child checking the frames from ``at`` (None: half)."""
    reader = _Reader(path, limits or Limits(), keep_blob_values=False, fast=True)
    reader.split_min, reader.split_at = 0, at
    return report_of(reader)


def test_a_child_checks_the_frames_after_any_split_point(tools: bytes,
                                                         tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ok.replay"
    path.write_bytes(tools)
    n = len(frames_of(path)["off"])
    assert n >= 3
    slow, _ = run(path, fast=False)
    assert slow.ok and slow.events_read == N
    for at in (None, *range(1, n)):
        report, reader = split(path, at)
        assert report == slow, at
        assert reader.child_frames == (n - at if at else reader.child_frames) > 0, at
        assert reader.fast_frames == n and reader.events_checked == N, at


def test_names_first_seen_in_the_child_s_frames(tmp_path: pathlib.Path) -> None:
    """A channel and a task first named by an index batch after the child's first row."""
    path = tmp_path / "late.replay"
    evs = tool_events()
    with CassetteWriter(path, golden_header()) as w:
        for ev in evs[:-50]:
            w.write(ev)
        for ev in evs[-50:]:
            w.write(Event(seq=ev.seq, channel="late", request=ev.request, response=ev.response,
                          start_ns=ev.start_ns, duration_ns=ev.duration_ns, task="later"))
    report, reader = split(path)
    assert report == run(path, fast=False)[0] and report.ok
    assert reader.child_frames > 0


def test_a_file_whose_records_refer_across_the_split(packed: tuple[bytes, list[Event]],  # noqa: F811
                                                     tmp_path: pathlib.Path) -> None:
    """Container blobs, errors, chunks, tuples and references to blobs of earlier frames:
    the child vouches for what it can, and the report stays the sequential one."""
    data, _ = packed
    path = tmp_path / "mixed.replay"
    path.write_bytes(data)
    slow, _ = run(path, fast=False)
    for at in range(1, len(frames_of(path)["off"])):
        assert split(path, at)[0] == slow, at


def test_bit_flips_with_a_child(tools: bytes, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "flip.replay"
    rng = random.Random(SEED)
    for bit in rng.sample(range(len(tools) * 8), 40):
        damaged = bytearray(tools)
        damaged[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(damaged)
        report, _ = split(path, 1 + bit % 3)
        assert report == run(path, fast=True)[0], bit  # the one-process fast path
        slow, _ = run(path, fast=False)
        assert report.status == "corrupt", (bit, report)
        if not slow.ok:
            assert report == slow, bit


def test_cuts_with_a_child(tools: bytes, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "cut.replay"
    for cut in random.Random(SEED).sample(range(len(tools)), 20):
        path.write_bytes(tools[:cut])
        report, _ = split(path)
        assert report == run(path, fast=False)[0] and report.offset == cut


@pytest.mark.parametrize("row", [5, N // 2, N - 3])
def test_an_index_row_that_lies_on_either_side(tools: bytes, tmp_path: pathlib.Path,
                                               row: int) -> None:
    """A row of the parent's frames, around the split or of the child's: reported as the
    one-process fast path reports it (the first row that differs, after the last frame)."""
    path = tmp_path / "row.replay"
    path.write_bytes(tools)

    def edit(m: dict[str, Any]) -> dict[str, Any]:
        if not m["first"] <= row < m["first"] + m["n"]:
            return m
        a = array.array("q", m["start"])
        a[row - m["first"]] += 1
        return {**m, "start": a.tobytes()}

    repack(path, index=edit)
    want, _ = run(path, fast=True)
    assert want.message == f"bad index: event {row}'s 'start' column differs from its record"
    for at in (None, 1, 2, 3):
        assert split(path, at)[0] == want, at


def test_a_budget_that_only_the_halves_fit(tools: bytes, tmp_path: pathlib.Path) -> None:
    """What verify holds (80 bytes a blob) passes the budget in the child's frames only
    with the parent's share counted: the child's report does not hold, and the parent
    finds the limit where the sequential reader does."""
    path = tmp_path / "budget.replay"
    path.write_bytes(tools)
    blobs = run(path, fast=False)[0].blob_count
    assert blobs >= N
    for budget in (blobs * 80 - 5000, blobs * 60, blobs * 45):
        limits = Limits(max_decoded_size=budget, max_decoded_ratio=0)
        slow, _ = run(path, fast=False, limits=limits)
        assert slow.status == "over limit", budget
        for at in (1, 2):
            report, reader = split(path, at, limits)
            assert report == slow, (budget, at)
            assert reader.child_frames == 0


def test_a_child_that_cannot_do_its_work_says_so() -> None:
    """Any failure in the child is a report the parent does not take (it then checks
    those frames itself)."""
    for request in (b"", b"\xc1", msgpack.packb({"path": "/nonexistent", "first": 1})):
        out = subprocess.run([sys.executable, "-c", _CHILD, _ROOT], input=request,
                             capture_output=True, check=True).stdout
        assert msgpack.unpackb(out)["ok"] is False
