"""``verify`` of a long packed cassette on two cores.

The frames of a packed file are checked in file order by one decoder
(``framecheck.py``), because each frame's records depend on what came before:
the blobs they refer to, the decoded bytes held against the budget, the
numbering of blobs and events. Yet in a long run most of that state is only
counted: ``verify`` keeps a str or bytes blob as its type, and the checks of
one frame rarely look at a blob defined far before it. So :func:`start` hands
the last frames (from frame ``first``, 46% of the decompressed bytes) to
a child process, started with ``sys.executable`` (no fork), which checks them
exactly as ``FastFrames`` does here, from a state it reads off the index:

* blobs before ``first`` are *foreign*: a record that refers to one is not
  vouched for (its checks may need that blob's value);
* it counts ``held`` from 0 and reports ``demand``, the most any of its
  records asked of the budget on top of that (``FastFrames.demand``);
* it numbers events and blobs from the counts of the index rows before
  ``first`` (``pos`` and ``bpos`` below the frame's stream offset), and
  compares its events with those rows.

When the parent reaches ``first`` it takes the child's frames only if the
child vouched for every one of them, the last one ending with the ``end``
record, and the state it assumed is the parent's: the same numbers of events
and blobs, and ``held + demand`` within the budget (then no check of ``held``
in those frames can fail, nor take another path, in the sequential order).
Then every record of those frames was checked as the sequential reader checks
it, with the same outcome. In any other case (damage, a foreign reference, a
child that failed to start or died) the parent checks those frames itself as
before, so damage is located and reported exactly as ever.

Memory: the child holds what the parent would for its frames (two frames
read ahead, one batch of index rows, 16 bytes per blob); the parent no
longer holds them. CPU: the child's start-up (~0.1 s) and its second pass
over the index are extra; a file under :data:`SPLIT_MIN_RAW` is not split.
"""

from __future__ import annotations

import array
import bisect
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import msgpack

from replay._cassette import index as ix
from replay._cassette.codec import EXT_REF
from replay._cassette.decoder import DecodeError, Decoder, End, _ref_id
from replay._cassette.events import Event
from replay._cassette.framecheck import FastFrames
from replay._cassette.indexread import IndexRecords, IndexScan, Rows
from replay._cassette.layout import Limits

SPLIT_MIN_RAW = 48 * 1024 * 1024
"""Decompressed bytes under which ``verify`` stays in one process: below it the
child's start-up and index pass cost about what it saves."""

PARENT_SHARE = 0.54
"""The parent's share of the decompressed bytes: the child also starts an interpreter
and reads the index up to its first row (at 1M events, 3.4 s of CPU for the child's
half against 2.9 s for the parent's, measured)."""

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_CHILD = ("import sys; sys.path.insert(0, sys.argv[1]); "
          "from replay._cassette.framesplit import main; main()")
_LIMITS = ("max_window_size", "max_record_size", "max_header_size", "max_record_values",
           "max_decoded_size", "max_decoded_ratio")


def cores() -> int:
    """CPUs this process may run on (1 when ``sys.executable`` is not a Python, as in
    an embedding application: no child is started then)."""
    if "python" not in os.path.basename(sys.executable).lower():
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Split:
    """The child process checking frames ``first`` onwards (see the module docstring)."""

    def __init__(self) -> None:
        """Start the child's interpreter (it imports while the parent reads the index);
        its work comes with :meth:`send`. Raises OSError."""
        self.first = 0
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-c", _CHILD, _ROOT], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True,
            env={"MALLOC_MMAP_THRESHOLD_": "131072", **os.environ})

    def send(self, path: str, scan: IndexScan, at: int, limits: Limits, budget: int,
             first: int) -> None:
        """The child's work: the frames from ``first`` on."""
        self.first = first
        request = msgpack.packb({
            "path": path, "first": first, "at": at, "budget": budget,
            "limits": [getattr(limits, k) for k in _LIMITS],
            "frames": {k: ix.to_bin(a[first:]) for k, a in scan.frames.items()}})
        try:  # a request over the pipe's buffer (~1,800 frames) waits for the child to read
            assert self._proc is not None and self._proc.stdin is not None
            with self._proc.stdin as stdin:
                stdin.write(request)
        except OSError:  # the child is already gone: adopt() finds no result
            pass

    def result(self) -> dict[str, Any] | None:
        """The child's report once it exits, or None (it failed)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        try:
            assert proc.stdout is not None
            with proc.stdout as stdout:
                out = stdout.read()
            got = msgpack.unpackb(out, raw=False) if proc.wait() == 0 else None
        except (OSError, ValueError):
            return None
        return got if type(got) is dict and got.get("ok") is True else None

    def adopt(self, fast: FastFrames) -> list[tuple[int, int, int]]:
        """Take the child's frames into ``fast``'s decoder and rows when its report holds
        for the state at frame ``first``: (offset, length, stream offset after it) of
        each; none when it does not (the parent then checks them itself)."""
        r = self.result()
        decoder, fr = fast.decoder, fast.scan.frames
        n = len(fr["off"])
        try:
            if r is None or decoder.end is not None or decoder.pending \
                    or decoder.done != fr["raw"][self.first] \
                    or r["events0"] != decoder.events or r["blobs0"] != len(decoder.blobs) \
                    or decoder.held + r["demand"] > decoder.budget \
                    or type(r["end"]) is not list or type(r["mismatch"]) is not str \
                    or r["done"] != fr["raw"][n - 1] + fr["rawlen"][n - 1]:
                return []
            events, blobs, held, (end_events, end_blobs) = (r["events"], r["blobs"], r["held"],
                                                            r["end"])
            decoder.end = End(int(end_events), int(end_blobs))
        except (KeyError, TypeError, ValueError, IndexError):
            return []
        decoder.events += int(events)
        # Counted only: no record after these frames refers to a blob.
        decoder.blobs = _Numbered([], len(decoder.blobs) + int(blobs))
        decoder._sizes = array.array("q")
        decoder.held += int(held)
        decoder.done = r["done"]
        fast.rows.next += int(events)
        fast.rows.mismatch = fast.rows.mismatch or r["mismatch"]
        return [(fr["off"][k], fr["len"][k], fr["raw"][k] + fr["rawlen"][k])
                for k in range(self.first, n)]

    def close(self) -> None:
        """Stop the child if it still runs."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None


def spawn(file_size: int, min_raw: int | None) -> Split | None:
    """A child started before the index is read, for a file that will likely be split
    (at least half :data:`SPLIT_MIN_RAW` compressed), else None."""
    if min_raw is None or file_size < min_raw // 2 or cores() < 2:
        return None
    try:
        return Split()
    except OSError:
        return None


def start(path: str, scan: IndexScan, at: int, limits: Limits, budget: int,
          min_raw: int | None, first: int | None = None, child: Split | None = None
          ) -> Split | None:
    """``child`` (or a new one) checking the frames from ``first`` (None: where the
    parent's share of the bytes ends), or None (``child`` stopped) when the file is not
    worth it."""
    fr = scan.frames
    total = sum(fr["rawlen"])
    if first is None:
        first = max(1, bisect.bisect_left(fr["raw"], int(total * PARENT_SHARE)))
    if min_raw is None or total < max(min_raw, 1) or not 0 < first < len(fr["off"]) \
            or cores() < 2:
        if child is not None:
            child.close()
        return None
    try:
        split = child or Split()
    except OSError:
        return None
    split.send(path, scan, at, limits, budget, first)
    return split


class _Numbered(list[Any]):
    """A decoder's blob list seen with ids from ``first`` (while it decodes a record)."""

    def __init__(self, blobs: list[Any], first: int) -> None:
        super().__init__()
        self.blobs, self.first = blobs, first

    def __len__(self) -> int:
        return self.first + len(self.blobs)

    def append(self, value: Any) -> None:
        self.blobs.append(value)


class _RangeDecoder(Decoder):
    """A decoder that starts at a frame in the middle: ``blobs[0]`` is blob ``foreign``,
    and a reference to a blob below it (the parent's) is not vouched for."""

    foreign = 0

    def _ext(self, code: int, data: bytes) -> Any:
        if code != EXT_REF:
            return super()._ext(code, data)
        blobs = self.blobs.blobs if type(self.blobs) is _Numbered else self.blobs
        ident = _ref_id(data)
        if ident < self.foreign:
            raise DecodeError("reference to a blob before this process's frames")
        if ident - self.foreign >= len(blobs):
            raise DecodeError(f"reference to blob {ident}, which is not defined before it")
        self._expanded += self._sizes[ident - self.foreign]
        return blobs[ident - self.foreign]

    def decode(self, payload: bytes | bytearray | memoryview, buf: bytes | bytearray,
               start: int, end: int) -> Event | End | None:
        blobs = self.blobs
        self.blobs = _Numbered(blobs, self.foreign)  # a blob record's id is checked by len()
        try:
            return super().decode(payload, buf, start, end)
        finally:
            self.blobs = blobs


def _skip(batches: Iterator[dict[str, Any]], raw: int, names: IndexScan
          ) -> tuple[int, int, dict[str, Any] | None, int]:
    """Read index batches up to the first event row at stream offset ``raw`` or after:
    (events before it, blobs before ``raw``, its batch, its row in the batch)."""
    events = blobs = 0
    for m in batches:
        if m["k"] != "ix":
            break
        names.channels += m["chans"]
        names.tasks += m["tasks"]
        pos = ix.from_bin("Q", m["pos"], m["n"], "pos")
        at = bisect.bisect_left(pos, raw)
        events += at
        blobs += bisect.bisect_left(ix.from_bin("Q", m["bpos"], m["nb"], "bpos"), raw)
        if at < len(pos):
            return events, blobs, m, at
    return events, blobs, None, 0


def check_from(path: str, first: int, at: int, frames: dict[str, array.array[int]],
               limits: Limits, budget: int) -> dict[str, Any]:
    """The child's work: frames ``first`` onwards, checked as ``FastFrames`` checks them."""
    size = os.path.getsize(path)
    raw = frames["raw"][first]
    scan = IndexScan()
    scan.frames = frames
    with open(path, "rb") as f:
        batches = iter(IndexRecords(f, at, size, limits))
        events0, blobs0, batch, row = _skip(batches, raw, scan)
        dec = _RangeDecoder(limits.max_record_size, max_values=limits.max_record_values,
                            keep_blob_values=False)
        dec.budget = budget
        dec.foreign = blobs0
        dec.done = raw
        rows = Rows(batches, scan)
        rows.next, rows.names_follow = events0, True
        if batch is not None:
            rows.resume(batch, row)
        fast = FastFrames(path, scan, dec, limits, rows)
        try:
            n = len(frames["off"])
            for k in range(first, n):
                if not fast.frame(k) or (dec.end is not None) != (k == n - 1):
                    return {"ok": False, "frame": k}
                rows.check(dec.event_pos)
                del dec.event_pos[:]
        finally:
            fast.close()
    assert dec.end is not None
    return {"ok": True, "events0": events0, "blobs0": blobs0, "events": dec.events,
            "blobs": len(dec.blobs), "held": dec.held, "demand": fast.demand,
            "done": dec.done, "end": [dec.end.events, dec.end.blobs],
            "mismatch": rows.mismatch}


def main() -> None:
    """The child: a request on stdin, the report on stdout (``ok`` false on any failure:
    the parent then checks those frames itself)."""
    try:
        req = msgpack.unpackb(sys.stdin.buffer.read(), raw=False)
        limits = Limits(**dict(zip(_LIMITS, req["limits"], strict=True)))
        first = req["first"]
        frames = {}  # the columns from frame ``first`` on, at their places
        for k, c in ix.FRAME_COLUMNS.items():
            a = array.array(c, bytes(array.array(c).itemsize * first))
            a.extend(ix.from_bin(c, req["frames"][k], len(req["frames"][k]) // a.itemsize, k))
            frames[k] = a
        report = check_from(req["path"], first, req["at"], frames, limits,
                            req["budget"])
    except Exception as exc:  # any failure means "not vouched for"
        report = {"ok": False, "error": repr(exc)}
    sys.stdout.buffer.write(msgpack.packb(report))
