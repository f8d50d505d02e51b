"""Content-encoded response chunks decoded for storage.

A cassette keeps a response's body decoded so that redaction sees its text;
the chunk boundaries stay those that arrived.
"""

from __future__ import annotations

import importlib
import zlib
from typing import Any

from replay._cassette.events import Chunk


def decode_chunks(chunks: tuple[Chunk, ...], encoding: str) -> tuple[Chunk, ...] | None:
    """The chunks decoded (gzip, deflate, zstd; br when brotli is installed), or None.

    Stored decoded so redaction can see the text; boundaries follow the raw
    chunks, as httpx's own decoders do (empty pieces are dropped).
    """
    codings = [c.strip().lower() for c in encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return None
    data = [c.data for c in chunks]
    try:
        for coding in reversed(codings):
            data = _decode_one(data, coding)
    except Exception:
        return None
    return tuple(Chunk(d, c.at_ns) for d, c in zip(data, chunks, strict=True) if d)


def _decode_one(parts: list[bytes], coding: str) -> list[bytes]:
    obj: Any
    if coding in ("gzip", "x-gzip"):
        obj = zlib.decompressobj(zlib.MAX_WBITS | 16)
    elif coding == "deflate":
        head = b"".join(parts)[:2]
        raw = len(head) == 2 and (head[0] * 256 + head[1]) % 31 != 0
        obj = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    elif coding == "zstd":
        import zstandard
        obj = zstandard.ZstdDecompressor().decompressobj()
    elif coding == "br":
        brotli: Any = importlib.import_module("brotli")
        obj = brotli.Decompressor()
        return [obj.process(p) for p in parts]
    else:
        raise ValueError(f"unsupported content-encoding {coding!r}")
    out = [obj.decompress(p) for p in parts]
    tail = obj.flush() if hasattr(obj, "flush") else b""
    if tail and out:
        out[-1] += tail
    return out
