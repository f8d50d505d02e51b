"""Writing a cassette: crash-safe per event, packed and renamed into place at close.

Version 2 (the default) appends each event's framed records to a journal with
one ``write()`` and no compression, then packs it (``pack.py``) at ``close()``;
version 1 (kept for tests and old readers) flushes a zstd block per event.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import IO

import crc32c
import zstandard

from replay._cassette import index as ix
from replay._cassette.codec import (
    _FRAMING,
    Encoder,
    pack_plain,
)
from replay._cassette.events import Event
from replay._cassette.layout import (
    _HEAD,
    _TRAILER,
    _U32,
    FORMAT_VERSION,
    JOURNAL_TAG,
    MAGIC,
    TRAILER_MAGIC,
    Header,
    PathArg,
)

# -- writing -----------------------------------------------------------------

def encode_header(header: Header, limit: int = 1024 * 1024, *,
                  version: int = FORMAT_VERSION) -> bytes:
    """The header section's bytes (magic to CRC) for ``header``."""
    body = pack_plain(header.to_map())
    if len(body) > limit:
        raise ValueError(f"header map of {len(body)} bytes exceeds {limit}")
    head = _HEAD.pack(MAGIC, version, len(body))
    return head + body + _U32.pack(crc32c.crc32c(body, crc32c.crc32c(head[8:])))


class CassetteWriter:
    """Writes a cassette, crash-safely, to ``path + ".partial"``.

    ``close()`` finishes the file and renames it over ``path`` (so an older
    cassette survives a crashed re-record); ``abort()`` leaves the
    ``.partial``. ``write()`` is thread-safe; when it returns, the event is in
    the OS (readable after SIGKILL; not fsynced until close).
    """

    def __init__(self, path: PathArg, header: Header, *,
                 transform: Callable[[Event], Event] | None = None, level: int = 3,
                 version: int = FORMAT_VERSION) -> None:
        if not 1 <= level <= 19:  # 20+ ask for windows past default reader limits
            raise ValueError(f"zstd level must be 1..19, not {level}")
        if version not in (1, 2):
            raise ValueError(f"this release writes format versions 1 and 2, not {version}")
        self.version = version
        """The format version written."""
        self._level = level
        self.path = os.fspath(path)
        """Final path of the cassette."""
        self.partial_path = self.path + ".partial"
        """Where the cassette is written until ``close()``."""
        self._transform = transform
        self._encoder = Encoder()
        self._cobj = zstandard.ZstdCompressor(level=level, write_checksum=True).compressobj()
        self._lock = threading.Lock()
        self._closed = False
        self._broken = False
        self._frame_len = 0
        self._frame_crc = 0
        self._batch = ix.Batch()
        self._pos = 0  # journal stream offset (version 2)
        self._head = encode_header(header, version=version)
        self._file: IO[bytes] = open(self.partial_path, "wb")  # noqa: SIM115
        try:
            self._file.write(self._head + (JOURNAL_TAG if version == 2 else b""))
            self._file.flush()
        except BaseException:
            self._file.close()
            raise
        self._fd = self._file.fileno()

    def write(self, event: Event) -> None:
        """Append one event (after ``transform``); durable against SIGKILL on return."""
        if self._transform is not None:
            event = self._transform(event)
        if not isinstance(event, Event):
            raise TypeError(f"CassetteWriter.write takes an Event, not {type(event).__name__}")
        with self._lock:
            if self._closed or self._broken:
                raise ValueError(f"write to a closed CassetteWriter ({self.partial_path})")
            if self.version == 1:
                self._emit(self._encoder.encode_event(event), zstandard.COMPRESSOBJ_FLUSH_BLOCK)
                return
            parts = self._encoder.encode_payloads(event)
            batch, pos = self._batch, self._pos
            out = bytearray()
            last = len(parts) - 1
            for k, p in enumerate(parts):
                if k == last:
                    batch.add(event, pos + len(out))
                else:
                    batch.bpos.append(pos + len(out))
                out += _FRAMING.pack(len(p), crc32c.crc32c(p))
                out += p
            if len(batch) >= ix.BATCH:
                self._index_record(out)
            self._append(out)

    def _index_record(self, out: bytearray) -> None:
        """Add the batch's ``ix`` record to ``out`` (the bytes about to be appended)."""
        p = ix.pack(self._batch.record())
        out += _FRAMING.pack(len(p), crc32c.crc32c(p))
        out += p

    def _append(self, out: bytes | bytearray) -> None:
        """One ``write()`` of ``out`` to the journal (more only if the OS writes less)."""
        try:
            view = memoryview(out)
            while view:
                view = view[os.write(self._fd, view):]
        except BaseException:
            self._broken = True  # a part of a record may be in the file
            raise
        self._pos += len(out)

    def _emit(self, data: bytes, mode: int) -> None:
        try:
            out = self._cobj.compress(data) + self._cobj.flush(mode)
            self._file.write(out)
            self._file.flush()
        except BaseException:
            self._broken = True  # the zstd stream and the file no longer agree
            raise
        self._frame_len += len(out)
        self._frame_crc = crc32c.crc32c(out, self._frame_crc)

    def close(self) -> None:
        """Write the end record and trailer, fsync, and rename to ``path``. Idempotent.

        A writer broken by a failed write is aborted instead (its ``.partial`` kept).
        """
        with self._lock:
            if self._closed:
                return
            if self._broken:
                self._abort()
                return
            self._closed = True
            if self.version == 2:
                self._close_journal()
                return
            try:
                self._emit(self._encoder.end_record(), zstandard.COMPRESSOBJ_FLUSH_FINISH)
                self._file.write(_TRAILER.pack(TRAILER_MAGIC, self._frame_len, self._frame_crc))
                self._file.flush()
                os.fsync(self._file.fileno())
            finally:
                self._file.close()
            os.replace(self.partial_path, self.path)
            _fsync_dir(self.path)

    def _close_journal(self) -> None:
        """End the journal (last ``ix`` and ``end`` records), then pack it over ``path``.

        If packing fails the journal stays, complete, at ``partial_path``.
        """
        from replay._cassette.pack import pack_journal
        try:
            out = bytearray()
            if len(self._batch):
                self._index_record(out)
            out += self._encoder.end_record()
            self._append(out)
        finally:
            self._file.close()
        pack_journal(self.partial_path, self.path, len(self._head), level=self._level)
        os.remove(self.partial_path)
        _fsync_dir(self.path)

    def abort(self) -> None:
        """Stop without finishing: the ``.partial`` stays, readable as truncated."""
        with self._lock:
            self._abort()

    def _abort(self) -> None:
        if not self._closed:
            self._closed = True
            self._file.close()

    def __enter__(self) -> CassetteWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # A run that raised is still a recording worth keeping (often the one
        # you want to replay), so a clean close either way.
        self.close()


def _fsync_dir(path: str) -> None:
    """Make the rename durable where the OS lets us open a directory."""
    with contextlib.suppress(OSError):
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

