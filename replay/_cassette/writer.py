"""Writing a cassette: crash-safe per event, packed and renamed into place at close.

Version 2 (the default) appends each event's framed records, uncompressed, to a
journal, then packs it (``pack.py``) at ``close()``; version 1 (kept for tests
and old readers) flushes a zstd block per event.

The journal is written through a shared memory map where the platform allows
it (``journalmap.py``), else with one ``write()`` per event.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import IO

import crc32c
import zstandard

from replay._cassette import index as ix
from replay._cassette import journalmap as jm
from replay._cassette.codec import _FRAMING, Encoder
from replay._cassette.direct import DirectWrites
from replay._cassette.events import Event
from replay._cassette.journalmap import fsync_dir
from replay._cassette.layout import (
    _TRAILER,
    FORMAT_VERSION,
    JOURNAL_TAG,
    TRAILER_MAGIC,
    Header,
    PathArg,
)
from replay._cassette.redact import Redactor
from replay._cassette.shapes import CallShape as CallShape  # re-exported: the capture layer
from replay._cassette.shapes import ValueShape as ValueShape  # imports them from here
from replay._cassette.slots import Slot, write_all
from replay._cassette.slots import encode_header as encode_header  # its old home

# -- writing -----------------------------------------------------------------

class CassetteWriter(DirectWrites):
    """Writes a cassette, crash-safely, to ``path + ".partial"``.

    ``close()`` finishes the file and renames it over ``path`` (so an older
    cassette survives a crashed re-record); ``abort()`` leaves the
    ``.partial``. ``write()`` is thread-safe; when it returns, the event is in
    the OS (readable after SIGKILL; not fsynced until close).

    A writer belongs to the process that made it: in a child forked while it is
    open it is closed (writes raise ValueError; closing does nothing), and the
    parent's run goes on unharmed.
    """

    def __init__(self, path: PathArg, header: Header | bytes, *,
                 transform: Callable[[Event], Event] | None = None, level: int = 3,
                 version: int = FORMAT_VERSION, journal: Slot | None = None) -> None:
        if not 1 <= level <= 19:  # 20+ ask for windows past default reader limits
            raise ValueError(f"zstd level must be 1..19, not {level}")
        if version not in (1, 2):
            raise ValueError(f"this release writes format versions 1 and 2, not {version}")
        self.version = version
        """The format version written."""
        self._level = level
        self.path = os.fspath(path)
        """Final path of the cassette."""
        if journal is not None and version != 2:
            raise ValueError("a journal slot holds format version 2 journals")
        self.partial_path = journal.path if journal is not None else self.path + ".partial"
        """Where the cassette is written until ``close()``: ``path + ".partial"``, or
        the file of ``journal``, an empty :class:`~replay._cassette.slots.Slot` that
        a closed or dropped run leaves empty again, for the caller's next run."""
        self._slot = journal
        self._transform = transform
        self._encoder = Encoder()
        self._pack_value = self._encoder.packer.pack
        self._cobj = (zstandard.ZstdCompressor(level=level, write_checksum=True).compressobj()
                      if version == 1 else None)
        self._lock = threading.Lock()
        self._closed = False
        self._ended = False
        self._broken = False
        self._stopped = False  # any of the three: no more events
        self._frame_len = 0
        self._frame_crc = 0
        self._batch = ix.Batch()
        self._rows = self._batch.rows
        self._pos = 0  # journal stream offset (version 2)
        self._head = (header if isinstance(header, bytes)
                      else encode_header(header, version=version))
        self._base = len(self._head) + len(JOURNAL_TAG)  # file offset of stream offset 0
        self._map: mmap.mmap | None = None
        self._file: IO[bytes] | None = None
        if journal is not None:
            self._fd = journal.fd
            journal.begin(self._head + JOURNAL_TAG)
        else:
            self._file = open(self.partial_path, "w+b")  # noqa: SIM115
            try:
                self._file.write(self._head + (JOURNAL_TAG if version == 2 else b""))
                self._file.flush()
            except BaseException:
                self._file.close()
                raise
            self._fd = self._file.fileno()
        # Mapped once the records pass MAP_AFTER bytes; a slot never (slots.py says why).
        self._map_at = jm.MAP_AFTER if version == 2 and journal is None else 1 << 62
        jm.track(self)
        self.values_written = 0
        """Events written by :meth:`write_value`."""
        self.calls_written = 0
        """Events written by :meth:`write_call`."""
        self.writes_values = version == 2 and (
            transform is None or (type(transform) is Redactor and transform.callback is None))
        """Whether :meth:`value_shape` may be used: the format has the journal, and
        ``transform`` leaves value reads as they are (the default redactor does:
        :data:`~replay._cassette.redact.GENERATED_CHANNELS`)."""
        self._redactor = transform if isinstance(transform, Redactor) else None

    @property
    def direct_written(self) -> int:
        """Events written by :meth:`write_value` and :meth:`write_call` (a session
        counts those it hands to :meth:`write` itself)."""
        return self.values_written + self.calls_written

    @property
    def mapped(self) -> bool:
        """Whether the journal is being written through a memory map (else ``write()``)."""
        return self._map is not None

    def write(self, event: Event) -> None:
        """Append one event (after ``transform``); durable against SIGKILL on return."""
        if self._transform is not None:
            event = self._transform(event)
        if not isinstance(event, Event):
            raise TypeError(f"CassetteWriter.write takes an Event, not {type(event).__name__}")
        with self._lock:
            if self._stopped:
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
        """Append ``out`` (whole records) to the journal: copied into the map (grown
        when it must be), else one ``write()`` (more only if the OS writes less).

        Into the map, everything but the first record's 8-byte framing goes first,
        then that framing (one 8-byte copy): a copy that a kill cuts short leaves
        8 zero bytes where the next record starts, which readers take as the
        journal's end (docs/cassette-format.md, "The zero tail")."""
        m = self._map
        if m is None and self._pos >= self._map_at:  # long enough to be worth a map
            self._map_at = 1 << 62  # once: a journal that cannot be mapped stays so
            m = self._map = jm.open_map(self._fd, self._base + self._pos)
        if m is not None:
            at = self._base + self._pos
            end = at + len(out)
            if end > len(m):
                self._grow(end)
                m = self._map
        if m is not None:
            view = memoryview(out)
            m[at + 8:end] = view[8:]
            m[at:at + 8] = view[:8]
            view.release()
            self._pos += len(out)
            return
        try:
            write_all(self._fd, out)
        except BaseException:
            self._broken = self._stopped = True  # a part of a record may be in the file
            raise
        self._pos += len(out)

    def _grow(self, size: int) -> None:
        """Grow the map to hold at least ``size`` bytes; if it cannot, unmap (the
        journal goes on with ``write()``)."""
        assert self._map is not None
        if not jm.grow(self._map, self._fd, size, self._base + self._pos):
            self._unmap()

    def _unmap(self) -> None:
        """Stop mapping: the file cut to its records, its offset at their end."""
        m, self._map = self._map, None
        if m is not None:
            jm.cut(m, self._fd, self._base + self._pos)

    def forked(self) -> None:
        """In a forked child: forget the parent's writer (see the class docstring)."""
        m, self._map = self._map, None
        if m is not None:
            m.close()  # the child's mapping only; the parent's pages are untouched
        self._closed = self._stopped = True
        self._fd = -1
        self._lock = threading.Lock()  # another thread of the parent may have held it

    def _emit(self, data: bytes, mode: int) -> None:
        assert self._cobj is not None and self._file is not None  # version 1
        try:
            out = self._cobj.compress(data) + self._cobj.flush(mode)
            self._file.write(out)
            self._file.flush()
        except BaseException:
            self._broken = self._stopped = True  # the zstd stream and the file disagree
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
            self._closed = self._stopped = True
            jm.untrack(self)
            if self.version == 2:
                self._close_journal()
                return
            assert self._file is not None  # version 1
            try:
                self._emit(self._encoder.end_record(), zstandard.COMPRESSOBJ_FLUSH_FINISH)
                self._file.write(_TRAILER.pack(TRAILER_MAGIC, self._frame_len, self._frame_crc))
                self._file.flush()
                os.fsync(self._file.fileno())
            finally:
                self._file.close()
            os.replace(self.partial_path, self.path)
            fsync_dir(self.path)

    def end(self) -> None:
        """Version 2: write the journal's last ``ix`` and ``end`` records (one ``write()``),
        so the ``.partial`` is a complete run; :meth:`close` then only packs it
        (and may run later, in another thread). No more events can be written.
        """
        with self._lock:
            if self.version == 2 and not (self._ended or self._closed or self._broken):
                self._end_journal()

    def _end_journal(self) -> None:
        out = bytearray()
        if len(self._batch):
            self._index_record(out)
        out += self._encoder.end_record(self.direct_written)
        self._append(out)
        self._ended = self._stopped = True
        self._unmap()

    def _close_journal(self) -> None:
        """End the journal (last ``ix`` and ``end`` records), then pack it over ``path``.

        If packing fails the journal stays, complete, at ``partial_path``.
        """
        from replay._cassette.pack import pack_journal
        try:
            if not self._ended:
                self._end_journal()
        finally:
            self._unmap()
            self._release()
        pack_journal(self.partial_path, self.path, len(self._head), level=self._level)
        if self._slot is not None:
            self._slot.empty()
        else:
            os.remove(self.partial_path)
        fsync_dir(self.path)

    def drop(self) -> None:
        """Discard the run unfinished: nothing packed, nothing fsynced. Its journal is
        deleted, or emptied when it is a slot (``journal=``) the caller reuses."""
        with self._lock:
            if self._fd < 0:
                return  # a forked child's copy: the journal is the parent's
            if not self._closed:
                self._closed = self._stopped = True
                jm.untrack(self)
                m, self._map = self._map, None
                try:
                    if m is not None:
                        m.close()
                    if self._slot is not None:
                        self._slot.empty()
                finally:
                    self._release()
        if self._slot is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.partial_path)

    def abort(self) -> None:
        """Stop without finishing: the ``.partial`` stays, readable as truncated."""
        with self._lock:
            self._abort()

    def _abort(self) -> None:
        if not self._closed:
            self._closed = self._stopped = True
            jm.untrack(self)
            try:
                self._unmap()
            finally:
                self._release()

    def _release(self) -> None:
        """Close the journal's file (a slot's stays open: its pool owns it)."""
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> CassetteWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # A run that raised is still a recording worth keeping (often the one
        # you want to replay), so a clean close either way.
        self.close()
