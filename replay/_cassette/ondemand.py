"""One packed cassette's records, decoded on demand: what every view of the file shares.

:class:`_Packed` holds the index, a few decompressed frames and a bounded cache
of decoded blobs; it decodes the record at a stream offset (checking its frame,
CRC32C, size, values and expansion, as untrusted input) and resolves blob
references through the index, one nested read per blob not cached.
``eventlog.py`` builds the sequence of events on it.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections import OrderedDict
from typing import Any

import crc32c
import msgpack
import zstandard

from replay._cassette import index as ix
from replay._cassette.codec import _BLOB_HEAD, _BLOB_VALUE, _FRAMING, EXT_REF, OverLimitError
from replay._cassette.decoder import (
    DecodeError,
    Decoder,
    _may_hold_timestamp,
    _ref_id,
    check_values,
    reason,
)
from replay._cassette.errors import (
    CassetteCorruptError,
    CassetteLimitError,
    CassetteTruncatedError,
)
from replay._cassette.events import Event
from replay._cassette.layout import Header, Limits
from replay._cassette.recstruct import event_of, record_decoder
from replay._cassette.sections import _Damage

MAX_REF_DEPTH = 64
"""Blob references resolved one inside another, at most (each is a nested decode)."""
_FRAMES_CACHED = 4
_REF_SIZES = frozenset((1, 2, 4, 8))  # the lengths of a blob reference's data
_BLOB_CACHE_BYTES = 8 * 1024 * 1024
_BIN_BLOB = re.compile(  # {"k": "blob", "id": <uint>, "v": <bin>}, as the writer packs it
    re.escape(_BLOB_HEAD) + rb"([\x00-\x7f]|\xcc.|\xcd..|\xce.{4}|\xcf.{8})"
    + re.escape(_BLOB_VALUE) + rb"(\xc4.|\xc5..|\xc6.{4})", re.DOTALL)
"""The head of a blob record holding bytes: the id, then the bin's length (groups: each
as packed, its type byte then its big-endian value; a positive fixint is its value)."""
_LOW = (0, 0x7f, 0xff, 0xffff, 0, 0xffff_ffff, 0, 0, 0, 0xffff_ffff_ffff_ffff)
"""By the length of a packed uint or bin length: the mask that leaves its value."""


class _Packed:
    """What every view of one packed file shares: the index and the caches."""

    def __init__(self, path: str, header: Header, index: ix.Index, limits: Limits,
                 size: int) -> None:
        self.path = path
        self.header = header
        self.index = index
        self.limits = limits
        self.budget = limits.decoded_budget(size)
        self.raw_starts = list(index.frames["raw"])
        self.frames: dict[int, bytes] = {}
        # oldest first; popitem(last=False) is O(1), where a dict's first key after
        # many removals is found by a scan past every removed slot
        self.blobs: OrderedDict[int, tuple[Any, int]] = OrderedDict()
        self.blob_bytes = 0
        self.dctx = zstandard.ZstdDecompressor(max_window_size=limits.max_window_size)
        self.decoder = Decoder(limits.max_record_size, max_values=limits.max_record_values)
        self.unpack = functools.partial(  # no per-list/map hooks: C speed
            msgpack.unpackb, raw=False, strict_map_key=False, use_list=True,
            ext_hook=self._ext)
        self.decoder._unpackb = self.unpack
        self.decode_event = record_decoder(self._ext).decode
        self._bpos, self._nblobs = index.bpos, len(index.bpos)
        self._depth = 0
        self._expanded = 0
        self._at = 0  # stream offset of the record being decoded

    def path_offset(self, i: int) -> int:
        """File offset of the frame holding event ``i`` (where its damage is reported)."""
        pos = self.index.cols["pos"][i]
        k = bisect.bisect_right(self.raw_starts, pos) - 1
        return int(self.index.frames["off"][k])

    def frame(self, k: int) -> bytes:
        data = self.frames.get(k)
        if data is not None:
            return data
        f = self.index.frames
        off, ln, crc, rl = f["off"][k], f["len"][k], f["crc"][k], f["rawlen"][k]
        with open(self.path, "rb") as fh:
            fh.seek(off)
            z = fh.read(ln)
        if len(z) != ln:
            raise _Damage(CassetteTruncatedError, "file ends inside a frame", off + len(z))
        if crc32c.crc32c(z) != crc:
            raise _Damage(CassetteCorruptError, "frame checksum mismatch (index)", off)
        try:
            if zstandard.frame_content_size(z) != rl:
                raise zstandard.ZstdError("frame content size differs from the index")
            data = self.dctx.decompress(z, max_output_size=rl)
        except zstandard.ZstdError as exc:
            raise _Damage(CassetteCorruptError, str(exc), off) from None
        if len(data) != rl:
            raise _Damage(CassetteCorruptError, "frame decodes to the wrong size", off)
        if len(self.frames) >= _FRAMES_CACHED:
            del self.frames[next(iter(self.frames))]
        self.frames[k] = data
        return data

    def locate(self, pos: int) -> tuple[bytes, int, int]:
        """(the decoded frame holding stream offset ``pos``, ``pos`` within it, the
        frame's file offset)."""
        k = bisect.bisect_right(self.raw_starts, pos) - 1
        return self.frame(k), pos - self.raw_starts[k], self.index.frames["off"][k]

    def record(self, pos: int) -> tuple[Any, int]:
        """Decode the record at stream offset ``pos``: (its map, its expanded size)."""
        data, i, off = self.locate(pos)
        return self.decode_at(data, i, pos, off)

    def decode_at(self, data: bytes, i: int, pos: int, off: int) -> tuple[Any, int]:
        """Decode the record at ``data[i:]`` (stream offset ``pos``, in the frame at file
        offset ``off``, which ``frame`` checked): (its map, its expanded size)."""
        try:
            if i + 8 > len(data):
                raise DecodeError("index points past its frame")
            # The record's own CRC32C is not checked: the frame's, checked whenever the
            # frame is read (``frame``), covers these bytes.
            length = _FRAMING.unpack_from(data, i)[0]
            end = i + 8 + length
            if end > len(data):
                raise DecodeError("record crosses the end of its frame")
            payload = data[i + 8:end]
            if length > self.limits.max_record_values:
                check_values(payload, self.limits.max_record_values)
            saved, self._at, outer = self._at, pos, self._expanded
            self._expanded = 0
            try:
                m = self.unpack(payload)
                if data.find(b"\xff", i + 8, end) >= 0 and \
                        _may_hold_timestamp(data, i + 8, end):
                    self.decoder._reject_foreign(m)
                expanded = 2 * length + self._expanded
            finally:
                self._at, self._expanded = saved, outer
            if expanded > self.budget:
                raise OverLimitError(f"record expands to {expanded} decoded bytes with its "
                                     f"blob references resolved, over the {self.budget}-byte "
                                     "budget")
        except OverLimitError as exc:
            raise _Damage(CassetteLimitError, str(exc), off) from None
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise _Damage(CassetteCorruptError, f"bad record: {reason(exc)}", off) from None
        if type(m) is not dict:
            raise _Damage(CassetteCorruptError, "record is not a map", off)
        return m, expanded

    def fast_event(self, data: bytes, i: int, stop: int, at: int) -> Event | None:
        """The event record ``data[i:stop]`` (a payload at stream offset ``at`` in a frame
        ``frame`` checked, within the values limit) decoded by msgspec into a typed
        struct (``recstruct.py``), or None when it is not one this path takes as
        ``Event.from_map`` would: the caller decodes it again the usual way (``decode_at``),
        which raises the documented error for a bad one."""
        if data.find(b"\xff", i, stop) >= 0 and _may_hold_timestamp(data, i, stop):
            return None  # msgspec would make a datetime: let decode_at refuse it
        self._at, self._expanded = at, 0
        try:
            r = self.decode_event(data[i:stop])
            if r.k != "ev" or 2 * (stop - i) + self._expanded > self.budget:
                return None
            return event_of(r, self._ext)
        except Exception:  # decoded again by the caller, where the error is raised
            return None
        finally:
            self._at, self._expanded = 0, 0

    def keep_blob(self, ident: int, m: Any, size: int) -> Any:
        """Check the decoded record ``m`` is blob ``ident``, cache its value and return it."""
        if type(m) is not dict or m.get("k") != "blob" or m.get("id") != ident \
                or "v" not in m or len(m) != 3:
            raise DecodeError(f"index points at no blob {ident}")
        return self.keep_value(ident, m["v"], size)

    def keep_value(self, ident: int, value: Any, size: int) -> Any:
        """Cache ``value`` as blob ``ident`` (``size``: its expanded size) and return it."""
        while self.blobs and self.blob_bytes + size > _BLOB_CACHE_BYTES:
            self.blob_bytes -= self.blobs.popitem(last=False)[1][1]
        self.blobs[ident] = (value, size)
        self.blob_bytes += size
        return value

    def bin_blob(self, data: bytes, i: int, stop: int, ident: int) -> bool:
        """Take the record payload ``data[i:stop]`` (in a frame ``frame`` checked) as
        blob ``ident`` when it is ``{"k": "blob", "id": ident, "v": <bin>}`` packed as
        the writer packs it (an HTTP body of 64 KiB or more, or any body of a cassette
        written before bodies under that size were kept inline): its bytes are
        sliced out, exactly what msgpack would build, with no map built around them.
        False for anything else: the caller decodes the record the usual way."""
        head = _BIN_BLOB.match(data, i, stop)
        if head is None:
            return False
        idb, lenb = head.group(1, 2)
        j = head.end()
        size = 2 * (stop - i)  # as decode_at counts a record without references
        if int.from_bytes(idb, "big") & _LOW[len(idb)] != ident \
                or j + (int.from_bytes(lenb, "big") & _LOW[len(lenb)]) != stop \
                or size > self.budget:
            return False
        self.keep_value(ident, data[j:stop], size)
        return True

    def _ext(self, code: int, data: bytes) -> Any:
        # msgpack calls this for every ext value: a blob reference (the usual one, a
        # cached blob) takes the fewest steps (no helper call, the columns held here)
        if code == EXT_REF and len(data) in _REF_SIZES:
            ident = int.from_bytes(data, "big")
            if ident < self._nblobs and self._bpos[ident] < self._at:
                hit = self.blobs.get(ident)
                if hit is not None:
                    self._expanded += hit[1]
                    return hit[0]
        return self._ext_slow(code, data)

    def _ext_slow(self, code: int, data: bytes) -> Any:
        if code != EXT_REF:
            return self.decoder._ext(code, data)
        ident = _ref_id(data)
        bpos = self.index.bpos
        if ident >= len(bpos) or bpos[ident] >= self._at:
            raise DecodeError(f"reference to blob {ident}, which is not defined before it")
        hit = self.blobs.get(ident)
        if hit is None:
            if self._depth >= MAX_REF_DEPTH:
                raise DecodeError(f"blob references nested more than {MAX_REF_DEPTH} deep")
            self._depth += 1
            try:
                m, size = self.record(bpos[ident])
            except _Damage as d:
                if d.cls is CassetteLimitError:
                    raise OverLimitError(d.message) from None
                raise DecodeError(f"blob {ident}: {d.message}") from None
            finally:
                self._depth -= 1
            self.keep_blob(ident, m, size)
            self._expanded += size
            return m["v"]
        self._expanded += hit[1]
        return hit[0]
