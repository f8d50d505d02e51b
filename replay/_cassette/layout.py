"""The cassette file, in its two versions.

Every version starts with the same header section:

    header   b"AGTRPLAY" | u16 version | u32 n | msgpack map (n bytes) | u32 CRC32C

Version 1 (still read; written on request): one zstandard frame of framed
records (each u32 len | u32 CRC32C | payload), block-flushed per event, then
the trailer b"ARPE" | u64 frame length | u32 CRC32C of the frame bytes.

Version 2 (written by default) has two bodies after the header:

    journal  b"JRNL" | records, uncompressed      (a recording, or a crashed one)
    packed   b"PACK" | zstd frames of records | index frame | trailer
    trailer  b"ARPX" | u64 index offset | u64 index length | u32 CRC32C(index)

A recording appends each event's records with one ``write()`` (the kernel
keeps them across SIGKILL); ``close()`` packs the journal into frames of many
events with an index of every event (``index.py``), so readers seek. The reader
treats the file as hostile: bounded streaming decompression, bounded records,
and every failure reported as one :class:`~replay.CassetteError` with a byte
offset. The byte-level spec is docs/cassette-format.md.
"""

from __future__ import annotations

import datetime
import os
import platform
import struct
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal, TypeAlias

from replay._cassette.codec import (
    DEFAULT_MAX_RECORD,
    DEFAULT_MAX_VALUES,
)
from replay._cassette.errors import (
    CassetteError,
)
from replay._cassette.events import Event, Value

PathArg: TypeAlias = "str | os.PathLike[str]"

EXTENSION: Final = ".replay"
"""File name extension of a cassette."""
MAGIC: Final = b"AGTRPLAY"
FORMAT_VERSION: Final = 2
"""The format version this release writes (and the newest it reads)."""
TRAILER_MAGIC: Final = b"ARPE"
JOURNAL_TAG: Final = b"JRNL"
"""Version 2: the body is a journal of uncompressed records."""
PACK_TAG: Final = b"PACK"
"""Version 2: the body is packed frames, an index and a trailer."""
TRAILER2_MAGIC: Final = b"ARPX"
_TRAILER2 = struct.Struct("<4sQQI")  # magic, index offset, index length, CRC32C: 24 bytes
FRAME_RAW: Final = 512 * 1024
"""Writer policy (version 2): records per packed frame until it holds this many bytes."""

_HEAD = struct.Struct("<8sHI")  # magic, version, map length: 14 bytes
_U32 = struct.Struct("<I")
_TRAILER = struct.Struct("<4sQI")  # 16 bytes
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_BLOCK_MAX: Final = 128 * 1024  # zstd's largest block
_UNIT_MAX: Final = 3 + _BLOCK_MAX  # block header + largest block body
_CHUNK: Final = 1 << 20  # file read size

Status: TypeAlias = Literal["complete", "truncated", "corrupt", "over limit",
                            "unsupported version"]


@dataclass(frozen=True, slots=True)
class Limits:
    """What a reader accepts before it gives up with CassetteLimitError.

    Together they bound a reader's memory by the limits, not by the file:
    see "Limits" in docs/cassette-format.md.
    """

    max_window_size: int = 32 * 1024 * 1024
    """Largest zstd window (decoder memory) a frame may ask for."""
    max_record_size: int = DEFAULT_MAX_RECORD
    """Largest record payload, bytes."""
    max_header_size: int = 1024 * 1024
    """Largest header map, bytes."""
    max_record_values: int = DEFAULT_MAX_VALUES
    """Most msgpack values in one record (or the header map), at any depth:
    a value costs up to ~80 bytes decoded, even one encoded in a single byte."""
    max_decoded_size: int = 80 * 1024 * 1024
    """Decoded-bytes budget: the most decoded data a reader holds (blobs, and
    the events for ``read_cassette``, at their payload size plus 80 bytes per
    value) with the record it is reading (whose bytes count twice: the
    payload and its values), and the most any one record may expand to with
    its blob references resolved. A file larger than ``max_decoded_size /
    max_decoded_ratio`` gets ``max_decoded_ratio`` times its size instead."""
    max_decoded_ratio: int = 256
    """Decoded bytes allowed per byte of the file, when that is more than
    ``max_decoded_size``: real recordings decode to at most ~60 times their
    size, a decompression bomb to thousands."""

    def decoded_budget(self, file_size: int) -> int:
        """The decoded-bytes budget for reading a file of ``file_size`` bytes."""
        return max(self.max_decoded_size, self.max_decoded_ratio * file_size)


@dataclass(frozen=True, slots=True)
class Header:
    """Run metadata at the start of a cassette."""

    created: str
    """When recording started, ISO-8601 UTC (``2024-05-01T12:00:00.000000Z``)."""
    argv: tuple[str, ...]
    """The recorded process's ``sys.argv``."""
    python: str
    """Python implementation and version (``CPython 3.11.7``)."""
    platform: str
    """``platform.platform()`` of the recording machine."""
    meta: Mapping[str, Value] = field(default_factory=dict)
    """Free map filled by other layers: fingerprint, parent link, redaction."""
    version: int = FORMAT_VERSION
    """Format version of the file it was read from (writers always write
    :data:`FORMAT_VERSION`)."""

    @classmethod
    def new(cls, *, meta: Mapping[str, Value] | None = None) -> Header:
        """A header for a recording starting now in this process."""
        now = datetime.datetime.now(datetime.UTC)
        return cls(created=now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), argv=tuple(sys.argv),
                   python=f"{platform.python_implementation()} {platform.python_version()}",
                   platform=platform.platform(), meta=dict(meta or {}))

    def to_map(self) -> dict[str, Any]:
        """The header map as stored (``version`` lives outside it)."""
        return {"created": self.created, "argv": list(self.argv), "python": self.python,
                "platform": self.platform, "meta": dict(self.meta)}

    @classmethod
    def from_map(cls, m: Any, version: int) -> Header:
        """Check and build; ValueError when a field is missing or mistyped."""
        if not isinstance(m, dict):
            raise ValueError("header is not a map")
        for key in ("created", "python", "platform"):
            if not isinstance(m.get(key), str):
                raise ValueError(f"header field {key!r} is not a string")
        argv = m.get("argv")
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise ValueError("header field 'argv' is not a list of strings")
        meta = m.get("meta")
        if not isinstance(meta, dict):
            raise ValueError("header field 'meta' is not a map")
        return cls(m["created"], tuple(argv), m["python"], m["platform"], meta, version)


@dataclass(frozen=True, slots=True)
class Cassette:
    """A cassette read into memory."""

    path: str
    """Where it was read from."""
    header: Header
    """Its header."""
    events: Sequence[Event]
    """Every complete event, in file (completion) order: a tuple, or for a packed
    version 2 file an :class:`~replay.EventLog` that decodes events on demand."""
    damage: CassetteError | None = None
    """What stopped reading early (only with ``strict=False``), else None."""


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The result of :func:`verify`: what state a cassette file is in."""

    path: str
    """The file checked."""
    status: Status
    """``complete``, or the kind of damage (CassetteError.kind)."""
    events_read: int
    """Complete events before the damage (all of them when complete)."""
    offset: int | None
    """Byte offset of the damage; None when complete."""
    message: str
    """What is wrong; empty when complete."""
    file_size: int
    """Size of the file, bytes."""
    blob_count: int
    """Shared-value (blob) records read."""
    compressed_size: int
    """Bytes of the zstd frame read."""
    raw_size: int
    """Bytes the frame decompressed to (the records)."""
    version: int | None
    """Format version in the header, when it could be read."""

    @property
    def ok(self) -> bool:
        """True when the file is complete and undamaged."""
        return self.status == "complete"

    def as_dict(self) -> dict[str, Any]:
        """The report as a plain dict (for JSON output)."""
        return asdict(self)

    def describe(self) -> str:
        """One line for people."""
        ratio = f"{self.raw_size / self.compressed_size:.1f}x" if self.compressed_size else "-"
        base = (f"{self.path}: {self.status}, {self.events_read} events, {self.blob_count} "
                f"blobs, {self.file_size} bytes ({self.raw_size} raw, {ratio} compression)")
        if self.ok:
            return base
        return f"{base}; at offset {self.offset}: {self.message}"


