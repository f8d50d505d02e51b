"""Packing a version 2 journal into the compressed, indexed cassette.

The journal's records are copied in order into zstd frames of about
:data:`~replay._cassette.layout.FRAME_RAW` bytes each (a frame always ends
after an event, or the ``end`` record), minus its ``ix`` records, which move
(their offsets shifted to the packed stream) into the index section with the
``frames`` table. Memory: one frame and one index record; the index is
spooled to a temporary file. Only journals this writer just wrote are packed,
so nothing here treats its input as hostile.
"""

from __future__ import annotations

import array
import os
import shutil
import tempfile
from typing import IO, Any, cast

import crc32c
import msgpack
import zstandard

from replay._cassette import index as ix
from replay._cassette.codec import _FRAMING, frame_record
from replay._cassette.layout import _TRAILER2, FRAME_RAW, PACK_TAG, TRAILER2_MAGIC

_CHUNK = 1 << 20


def _records(f: IO[bytes]) -> Any:
    """(payload) of each record from ``f``'s position to its end."""
    buf, i = b"", 0
    while True:
        if len(buf) - i < 8:
            buf = buf[i:] + f.read(_CHUNK)
            i = 0
            if len(buf) < 8:
                return
        length, _ = _FRAMING.unpack_from(buf, i)
        if len(buf) - i < 8 + length:
            buf = buf[i:] + f.read(max(_CHUNK, 8 + length))
            i = 0
        yield buf[i + 8:i + 8 + length]
        i += 8 + length


def _kind(payload: bytes) -> bytes:
    """The ``k`` of a record map this writer packed (its first key, a short str)."""
    h = 1 if payload[0] >> 4 == 8 else 3 if payload[0] == 0xDE else 5
    n = payload[h + 2] & 0x1F
    return payload[h + 3:h + 3 + n]


def pack_journal(journal: str, path: str, head_size: int, *, level: int = 3) -> None:
    """Pack ``journal`` (a closed version 2 journal) into a cassette at ``path``.

    Writes ``path + ".packing"``, fsyncs it and renames it over ``path``.
    """
    cctx = zstandard.ZstdCompressor(level=level, write_checksum=True)
    tmp = path + ".packing"
    frames = {k: array.array(c) for k, c in ix.FRAME_COLUMNS.items()}
    with open(journal, "rb") as src, open(tmp, "wb") as out, \
            tempfile.TemporaryFile() as spool:
        out.write(src.read(head_size))
        src.read(len(PACK_TAG))  # the journal's tag
        out.write(PACK_TAG)
        at, raw, removed = out.tell(), 0, 0
        buf = bytearray()

        def flush() -> None:
            nonlocal at, raw
            z = cctx.compress(bytes(buf))
            out.write(z)
            for k, v in (("off", at), ("len", len(z)), ("crc", crc32c.crc32c(z)),
                         ("raw", raw), ("rawlen", len(buf))):
                frames[k].append(v)
            at += len(z)
            raw += len(buf)
            buf.clear()

        for payload in _records(src):
            kind = _kind(payload)
            if kind == b"ix":
                m = msgpack.unpackb(payload, raw=False)
                spool.write(frame_record(ix.pack(ix.shift(m, removed))))
                removed += 8 + len(payload)
                continue
            buf += _FRAMING.pack(len(payload), crc32c.crc32c(payload))
            buf += payload
            if len(buf) >= FRAME_RAW and kind == b"ev":
                flush()
        if buf:
            flush()
        table: dict[str, Any] = {"k": "frames", "n": len(frames["off"])}
        table.update((k, ix.to_bin(a)) for k, a in frames.items())
        spool.write(frame_record(ix.pack(table)))
        size = spool.tell()
        spool.seek(0)
        index_at = at
        sink = _Crc(out)
        with cctx.stream_writer(cast("IO[bytes]", sink), size=size, closefd=False) as w:
            shutil.copyfileobj(spool, w, _CHUNK)
        index_len = out.tell() - index_at
        out.write(_TRAILER2.pack(TRAILER2_MAGIC, index_at, index_len, sink.crc))
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


class _Crc:
    """A file wrapper that keeps the CRC32C of what is written through it."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.crc = 0

    def write(self, data: bytes) -> int:
        self.crc = crc32c.crc32c(data, self.crc)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()

