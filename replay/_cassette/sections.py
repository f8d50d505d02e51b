"""The sections every reader walks: the header, and zstd frames unit by unit.

Shared by the sequential reader (``reader.py``) and the indexed one
(``eventlog.py``); failures are raised as :class:`_Damage` and become one
:class:`~replay.CassetteError` with a byte offset at the API.
"""

from __future__ import annotations

from typing import IO

import crc32c

from replay._cassette.codec import OverLimitError
from replay._cassette.decoder import reason, unpack_plain
from replay._cassette.errors import (
    CassetteCorruptError,
    CassetteError,
    CassetteLimitError,
    CassetteTruncatedError,
    CassetteVersionError,
)
from replay._cassette.events import Event
from replay._cassette.layout import (
    _BLOCK_MAX,
    _CHUNK,
    _HEAD,
    _TRAILER,
    _U32,
    _ZSTD_MAGIC,
    FORMAT_VERSION,
    MAGIC,
    TRAILER_MAGIC,
    Header,
    Limits,
)


class _Damage(Exception):
    """Raised inside the reader; becomes a CassetteError with events_read."""

    def __init__(self, cls: type[CassetteError], message: str, offset: int,
                 got: list[Event] | None = None) -> None:
        super().__init__(message)
        self.cls = cls
        self.message = message
        self.offset = offset
        self.got = got or []
        """Complete events decoded before the damage, not yet yielded."""


def _read_header(f: IO[bytes], limits: Limits) -> tuple[Header, int]:
    """Parse the header section at the start of ``f``; return it and its size."""
    head = f.read(_HEAD.size)
    if head[:8] != MAGIC[:len(head)]:
        raise _Damage(CassetteCorruptError, "not a cassette (bad magic)", 0)
    if len(head) < _HEAD.size:
        raise _Damage(CassetteTruncatedError, "file ends inside the header", len(head))
    _, version, n = _HEAD.unpack(head)
    if n > limits.max_header_size:
        raise _Damage(CassetteLimitError,
                      f"header declares {n} bytes, over the {limits.max_header_size} limit", 10)
    rest = f.read(n + 4)
    if len(rest) < n + 4:
        raise _Damage(CassetteTruncatedError, "file ends inside the header",
                      _HEAD.size + len(rest))
    body = rest[:n]
    if crc32c.crc32c(body, crc32c.crc32c(head[8:])) != _U32.unpack_from(rest, n)[0]:
        raise _Damage(CassetteCorruptError, "header checksum mismatch", _HEAD.size + n)
    # The envelope (magic, version, length, map, CRC) is the same in every
    # version, so a version error is only ever reported for intact headers.
    if not 1 <= version <= FORMAT_VERSION:
        cls = CassetteVersionError if version > FORMAT_VERSION else CassetteCorruptError
        raise _Damage(cls, f"format version {version}; this release reads 1..{FORMAT_VERSION}",
                      8)
    try:
        header = Header.from_map(unpack_plain(body, max_values=limits.max_record_values),
                                 version)
    except OverLimitError as exc:
        raise _Damage(CassetteLimitError, str(exc), _HEAD.size) from exc
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise _Damage(CassetteCorruptError, f"bad header map: {reason(exc)}",
                      _HEAD.size) from exc
    return header, _HEAD.size + n + 4


class _Frame:
    """The zstd frame, handed to the decoder one unit (frame header, block,
    checksum) per ``read()``.

    Walking the block headers (never their contents) tells exactly where the
    frame ends, whether the file stopped inside it, and which block the
    decoder was on when something failed; it also enforces the window limit
    before the decoder allocates anything.
    """

    _HEADER, _BLOCKS, _CHECKSUM, _DONE, _TRUNCATED = range(5)

    def __init__(self, f: IO[bytes], start: int, limits: Limits) -> None:
        self._f = f
        self._buf = b""
        self._i = 0
        self._limits = limits
        self._state = self._HEADER
        self._has_checksum = False
        self._block_max = _BLOCK_MAX
        self.start = start
        """File offset of the frame."""
        self.pos = start
        """File offset just past the last unit handed to the decoder."""
        self.crc = 0
        """CRC32C of the frame bytes handed out so far."""

    @property
    def done(self) -> bool:
        """The frame's last byte has been handed out."""
        return self._state == self._DONE

    @property
    def truncated(self) -> bool:
        """The file ended inside the frame."""
        return self._state == self._TRUNCATED

    def _ensure(self, n: int) -> bool:
        """Have the next ``n`` bytes in memory; False at end of file."""
        if len(self._buf) - self._i < n:
            self._buf = self._buf[self._i:] + self._f.read(max(_CHUNK, n))
            self._i = 0
        return len(self._buf) - self._i >= n

    def read(self, n: int) -> bytes:
        """The next unit of the frame, or b"" at its end or at end of file.

        ``n`` (the decoder's read size) is never less than the largest unit.
        """
        state, have = self._state, len(self._buf) - self._i
        if state == self._BLOCKS:
            size = self._block() if have >= 3 or self._ensure(3) else None
        elif state == self._CHECKSUM:
            size, self._state = 4, self._DONE
        elif state == self._HEADER:
            size = self._frame_header() if self._ensure(5) else None
        else:
            return b""
        if size is None or (have < size and not self._ensure(size)):
            self._state = self._TRUNCATED  # never hand the decoder half a unit
            return b""
        unit = self._buf[self._i:self._i + size]
        self._i += size
        self.pos += size
        self.crc = crc32c.crc32c(unit, self.crc)
        return unit

    def _block(self) -> int:
        buf, i = self._buf, self._i
        bh = buf[i] | buf[i + 1] << 8 | buf[i + 2] << 16
        btype, bsize = bh >> 1 & 3, bh >> 3
        if btype == 3 or bsize > self._block_max:
            raise _Damage(CassetteCorruptError, f"bad zstd block header {bh:06x}", self.pos)
        if bh & 1:  # the last block
            self._state = self._CHECKSUM if self._has_checksum else self._DONE
        return 4 if btype == 1 else 3 + bsize  # an RLE block's body is one byte

    def _frame_header(self) -> int | None:
        h = self._buf[self._i:self._i + 5]
        if h[:4] != _ZSTD_MAGIC:
            raise _Damage(CassetteCorruptError, "no zstd frame after the header", self.pos)
        fhd = h[4]
        single = fhd >> 5 & 1
        fcs_size = (single, 2, 4, 8)[fhd >> 6]
        if fhd & 0x0B:  # a reserved bit, or a dictionary id (never written)
            raise _Damage(CassetteCorruptError, "unsupported zstd frame header", self.pos)
        size = 6 - single + fcs_size
        if not self._ensure(size):
            return None
        if single:  # the window is the content size
            window = int.from_bytes(self._buf[self._i + 5:self._i + size], "little")
            window += 256 if fcs_size == 2 else 0
        else:
            wd = self._buf[self._i + 5]
            window = (1 << (10 + (wd >> 3))) * (8 + (wd & 7)) // 8
        if window > self._limits.max_window_size:
            raise _Damage(CassetteLimitError, f"zstd window of {window} bytes, over the "
                          f"{self._limits.max_window_size} limit", self.pos)
        self._block_max = min(_BLOCK_MAX, window)
        self._has_checksum = bool(fhd & 0x04)
        self._state = self._BLOCKS
        return size

    def rest(self, n: int) -> bytes:
        """Up to ``n`` bytes after the frame (the trailer)."""
        self._ensure(n)
        return self._buf[self._i:self._i + n]


def _zero_framing(f: IO[bytes], at: int) -> bool:
    """Whether the 8 bytes at ``at`` (where a journal record would start) are zero: a
    memory-mapped journal's end (docs/cassette-format.md, "The zero tail")."""
    f.seek(at)
    return f.read(8) == bytes(8)


def _zeros_to_end(f: IO[bytes], at: int) -> bool:
    """Whether every byte of ``f`` from ``at`` on is zero."""
    f.seek(at)
    while chunk := f.read(_CHUNK):
        if chunk.count(0) != len(chunk):
            return False
    return True


def _recheck(f: IO[bytes], size: int, frame_start: int | None, d: _Damage) -> _Damage:
    """Tell damage from a torn tail or a genuine limit, using the trailer.

    A file whose last 16 bytes are a plausible trailer was written to the
    end, so it is not truncated; and if its frame does not match the
    trailer's CRC, a length that looks over a limit is damage, not a limit.
    """
    if d.cls is not CassetteTruncatedError and d.cls is not CassetteLimitError:
        return d
    if size < _TRAILER.size + _HEAD.size + 4:
        return d
    f.seek(size - _TRAILER.size)
    magic, frame_len, crc = _TRAILER.unpack(f.read(_TRAILER.size))
    start = size - _TRAILER.size - frame_len
    if magic != TRAILER_MAGIC or start < _HEAD.size + 4:
        return d  # no trailer: a truncated file, or a limit we cannot doubt
    if frame_start is None:  # failed in the header: where does its length say it ends?
        f.seek(10)
        frame_start = _HEAD.size + 4 + _U32.unpack(f.read(4))[0]
        if d.cls is CassetteLimitError and start == frame_start:
            return d  # a header over the limit, and the trailer agrees about its size
    if d.cls is CassetteTruncatedError or start != frame_start:
        return _Damage(CassetteCorruptError, f"{d.message}, yet the file has a trailer", d.offset)
    f.seek(start)
    got = 0
    while chunk := f.read(min(_CHUNK, size - _TRAILER.size - f.tell())):
        got = crc32c.crc32c(chunk, got)
    if got != crc:
        return _Damage(CassetteCorruptError, f"{d.message}, and the frame fails its trailer "
                       "checksum", d.offset)
    return d
