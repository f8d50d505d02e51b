"""The index section of a packed version 2 cassette, read as hostile input.

:class:`IndexRecords` streams the index frame's records (bounded
decompression, each record's length, CRC32C and kind checked) and then checks
the trailer; :func:`read_index` gathers them into an
:class:`~replay._cassette.index.Index` (``eventlog.py`` reads events through
it); ``verify`` streams them twice instead (``framecheck.py``), holding only a
batch. :func:`check_index` compares an index with what a sequential read found.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO, Any, cast

import crc32c
import msgpack
import zstandard

from replay._cassette import index as ix
from replay._cassette.codec import _FRAMING, OverLimitError
from replay._cassette.decoder import DecodeError, Decoder, check_values, reason
from replay._cassette.errors import (
    CassetteCorruptError,
    CassetteLimitError,
    CassetteTruncatedError,
)
from replay._cassette.layout import _BLOCK_MAX, _TRAILER2, _UNIT_MAX, TRAILER2_MAGIC, Limits
from replay._cassette.sections import _Damage, _Frame


def _unpack_index(payload: bytes, limits: Limits) -> Any:
    check_values(payload, limits.max_record_values, "index record")

    def no_ext(code: int, data: bytes) -> Any:
        raise DecodeError(f"index record holds msgpack extension type {code}")

    return msgpack.unpackb(payload, raw=False, strict_map_key=False, ext_hook=no_ext)


def read_index(f: IO[bytes], at: int, size: int, limits: Limits,
               columns: Iterable[str] | None = None) -> ix.Index:
    """Read the index frame at ``at`` and the trailer after it; raise _Damage.
    ``columns``: the event columns to hold (see :class:`~replay._cassette.index.Index`)."""
    index = ix.Index(columns)
    records = IndexRecords(f, at, size, limits)
    for m in records:
        try:
            if m["k"] == "ix":
                index.add_ix(m)
            else:
                index.set_frames(m)
        except (ValueError, TypeError, OverflowError) as exc:
            raise _Damage(CassetteCorruptError, f"bad index: {reason(exc)}",
                          records.pos) from None
    return index


class IndexRecords:
    """The decoded records of the index frame at ``at`` (each a map whose ``k`` is
    ``"ix"``, then one ``"frames"``), then the trailer checked; raise _Damage.

    ``pos`` is the file offset the frame has been read to (where a record that
    does not fit is reported). Memory: one block of output and one record.
    """

    def __init__(self, f: IO[bytes], at: int, size: int, limits: Limits) -> None:
        self.pos = at
        self._it = self._records(f, at, size, limits)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._it

    def _records(self, f: IO[bytes], at: int, size: int, limits: Limits
                 ) -> Iterator[dict[str, Any]]:
        f.seek(at)
        frame = _Frame(f, at, limits)
        dctx = zstandard.ZstdDecompressor(max_window_size=limits.max_window_size)
        reader = dctx.stream_reader(cast("IO[bytes]", frame), read_size=_UNIT_MAX,
                                    read_across_frames=False)
        buf, total = bytearray(), 0
        budget = limits.decoded_budget(size)
        has_frames = False
        while True:
            try:
                out = reader.read1(_BLOCK_MAX)
            except zstandard.ZstdError as exc:
                raise _Damage(CassetteCorruptError, f"index: {exc}", frame.pos) from None
            self.pos = frame.pos
            if not out:
                break
            total += len(out)
            if total > budget:
                raise _Damage(CassetteLimitError, f"index decodes to more than the "
                              f"{budget}-byte budget", frame.pos)
            buf += out
            while len(buf) >= 8:
                length, crc = _FRAMING.unpack_from(buf, 0)
                if length > limits.max_record_size:
                    raise _Damage(CassetteLimitError, f"index record of {length} bytes, over "
                                  f"the {limits.max_record_size} limit", frame.pos)
                if len(buf) < 8 + length:
                    break
                payload = bytes(buf[8:8 + length])
                del buf[:8 + length]
                try:
                    if crc32c.crc32c(payload) != crc:
                        raise DecodeError("index record checksum mismatch")
                    m = _unpack_index(payload, limits)
                    kind = m.get("k") if type(m) is dict else None
                    if has_frames:
                        raise DecodeError("index record after the frames table")
                    if kind not in ("ix", "frames"):
                        raise DecodeError(f"unknown index record kind {kind!r}")
                    has_frames = kind == "frames"
                except OverLimitError as exc:
                    raise _Damage(CassetteLimitError, str(exc), frame.pos) from None
                except (ValueError, TypeError, OverflowError, RecursionError) as exc:
                    raise _Damage(CassetteCorruptError, f"bad index: {reason(exc)}",
                                  frame.pos) from None
                yield m
        if frame.truncated:
            raise _Damage(CassetteTruncatedError, "file ends inside the index", size)
        if not frame.done or buf:
            raise _Damage(CassetteCorruptError, "index frame ends inside a record", frame.pos)
        if not has_frames:
            raise _Damage(CassetteCorruptError, "index has no frames table", frame.pos)
        q = frame.pos
        expect = _TRAILER2.pack(TRAILER2_MAGIC, at, q - at, frame.crc)
        got = frame.rest(_TRAILER2.size + 1)
        if got[:_TRAILER2.size] == expect:
            if len(got) > _TRAILER2.size:
                raise _Damage(CassetteCorruptError, "bytes after the trailer",
                              q + _TRAILER2.size)
            return
        if len(got) < _TRAILER2.size and expect.startswith(got):
            raise _Damage(CassetteTruncatedError, "file ends inside the trailer", size)
        for lo, hi, what in ((0, 4, "bad trailer magic"),
                             (4, 12, "trailer index offset mismatch"),
                             (12, 20, "trailer index length mismatch")):
            if got[lo:hi] != expect[lo:hi]:
                raise _Damage(CassetteCorruptError, what, q + lo)
        raise _Damage(CassetteCorruptError, "index checksum mismatch (trailer)", q + 20)


def check_index(index: ix.Index, frames: list[tuple[int, int, int]], decoder: Decoder,
                data_start: int, data_end: int) -> None:
    """Check the index against what a sequential read found; raise _Damage."""
    try:
        index.check(data_start, data_end)
        f = index.frames
        seen = [(off, ln) for off, ln, _ in frames]
        if seen != list(zip(f["off"], f["len"], strict=True)):
            raise ValueError("frame table does not match the frames")
        if [r for _, _, r in frames[:-1]] != list(f["raw"][1:]):
            raise ValueError("frame table's raw offsets do not match the frames")
        if len(index) != decoder.events or len(index.bpos) != len(decoder.blobs):
            raise ValueError(f"index holds {len(index)} events and {len(index.bpos)} blobs; "
                             f"the file {decoder.events} and {len(decoder.blobs)}")
        if index.cols["pos"] != decoder.event_pos:
            raise ValueError("index event offsets do not match the events")
    except ValueError as exc:
        raise _Damage(CassetteCorruptError, f"bad index: {exc}", data_end) from None
