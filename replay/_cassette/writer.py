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
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import IO

import crc32c
import msgpack
import zstandard

from replay._cassette import index as ix
from replay._cassette import journalmap as jm
from replay._cassette import shapes as sh
from replay._cassette.codec import (
    _FRAMING,
    CALL_CHANNELS,
    CALL_INLINE_SIZE,
    Encoder,
    pack_plain,
)
from replay._cassette.events import CallSite, Event, Value
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

_pack = msgpack.Packer().pack  # ints and floats: the bytes Encoder's packer gives them
_crc = crc32c.crc32c
_frame_head = _FRAMING.pack
_join = b"".join
_row_head = ix.ROW_HEAD.pack

# -- writing -----------------------------------------------------------------

class CassetteWriter:
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

    def value_shape(self, channel: str, request: Value, task: str,
                    site: CallSite) -> ValueShape | None:
        """The constant part of value events (an int or float response, no error, no
        parent, no meta) on ``channel`` with ``request``, of ``task`` at ``site``;
        None when they must go through :meth:`write` (this writer cannot, or the
        record could hold a blob)."""
        if not self.writes_values:
            return None
        pieces = sh.value_pieces(channel, request, task, site)
        if pieces is None:
            return None
        with self._lock:
            batch = self._batch
            row = ix.ROW_TAIL.pack(ix.NO_PARENT, batch.channel_id(channel), batch.task_id(task),
                                   ix.FLAG_RESPONSE)
        return ValueShape(*pieces, row)

    def write_value(self, shape: ValueShape, seqs: Iterator[int], start_ns: int,
                    duration_ns: int, response: int | float) -> int:
        """Append a value event of ``shape``: its ``seq`` is ``next(seqs)``, taken under
        the writer's lock. Returns the seq. Durable against SIGKILL on return, as
        :meth:`write`; the record is the one ``write`` would make of the same event.

        ``response``: a float, or an int of at most 64 bits (the caller's guarantee).
        """
        lock = self._lock  # acquire() and release(): ~60 ns less than a with block
        lock.acquire()
        try:
            m = self._map  # set only while the journal is mapped and open
            if m is None and self._stopped:
                raise ValueError(f"write to a closed CassetteWriter ({self.partial_path})")
            seq = next(seqs)
            payload = _join((shape.head, _pack(seq), shape.mid, _pack(start_ns),
                             shape.dur_key, _pack(duration_ns), shape.tail,
                             _pack(response), shape.site))
            pos = self._pos
            rows = self._rows
            rows.frombytes(_row_head(seq, pos, start_ns, duration_ns) + shape.row)
            self.values_written += 1
            if m is not None:
                at = self._base + pos + 8
                end = at + len(payload)
                try:
                    m[at:end] = payload  # the payload first, its framing last (see _append)
                except IndexError:  # past the mapping: _append grows it (or uses write())
                    m = None
                else:
                    m[at - 8:at] = _frame_head(len(payload), _crc(payload))
                    self._pos = end - self._base
            if m is None:
                self._append(_frame_head(len(payload), _crc(payload)) + payload)
            if len(rows) >= _ROWS_FULL:  # the batch's ix record, after its last event
                buf = bytearray()
                self._index_record(buf)
                self._append(buf)
            return seq
        finally:
            lock.release()

    def call_shape(self, channel: str, task: str, site: CallSite,
                   meta: dict[str, Value]) -> CallShape | None:
        """The constant part of the events of calls on ``channel`` (a ``tool:`` or
        ``capture:`` one) of ``task`` at ``site`` with ``meta`` and no error; None when
        they must go through :meth:`write` (this writer cannot write them directly)."""
        if not (self.writes_values and channel.startswith(CALL_CHANNELS)):
            return None
        p = pack_plain
        red = self._transform
        try:
            if isinstance(red, Redactor) and meta:
                meta = red.value(meta)
            mid = p("channel") + p(channel) + p("request")
            where = p("site") + p([site.file, site.line, site.function])
            extra = p("meta") + p(meta) if meta else b""
            own = p("task") + p(task)
        except (ValueError, TypeError):
            return None
        with self._lock:
            batch = self._batch
            return CallShape(8 + bool(meta), mid, own, where, extra,
                             batch.channel_id(channel), batch.task_id(task))

    def write_call(self, shape: CallShape, seq: int, start_ns: int, duration_ns: int,
                   parent: int | None, request: Value, response: Value) -> bool:
        """Append the event of a call of ``shape`` that returned ``response``: the record
        :meth:`write` would make of it (redacted, then encoded), when it takes no
        blob: True, and durable against SIGKILL on return. False (nothing written):
        the caller writes the event with :meth:`write`, which looks for blobs.

        Redaction: one scan of the values' encoding decides for most calls
        (:meth:`Redactor.clean`); when it finds an anchor, the values are redacted
        as :meth:`write` would (``Redactor.value``), and encoded again if changed."""
        with self._lock:
            if self._closed or self._broken or self._ended:
                raise ValueError(f"write to a closed CassetteWriter ({self.partial_path})")
            pack = self._encoder.packer.pack
            try:
                req = pack(request)
                res = b"" if response is None else pack(response)
                if len(req) + len(res) >= CALL_INLINE_SIZE:
                    return False
                red = self._redactor
                if red is not None and not red.clean(req + res, request, response):
                    value = red.value
                    if (new := value(request)) is not request:
                        req = pack(new)
                    if (new := value(response)) is not response:
                        res = b"" if new is None else pack(new)
            except (ValueError, OverflowError, TypeError, RecursionError):
                return False  # write() says why, as for any event
            keys = shape.keys
            if res:  # a response (None has none)
                keys += 1
                res = sh.RESPONSE + res
            tail = shape.site
            if parent is not None:
                keys += 1
                tail += sh.PARENT + _pack(parent)
            payload = b"".join((sh.MAP_HEADS[keys], sh.K_SEQ, _pack(seq), shape.mid, req,
                                sh.START, _pack(start_ns), sh.DURATION, _pack(duration_ns),
                                shape.task, res, tail, shape.meta))
            if len(payload) >= CALL_INLINE_SIZE:
                return False
            rows = self._batch.add_row(seq, self._pos, start_ns, duration_ns,
                                       ix.NO_PARENT if parent is None else parent, shape.chan,
                                       shape.task_id, ix.FLAG_RESPONSE if res else 0)
            out = _frame_head(len(payload), _crc(payload)) + payload
            if rows >= ix.BATCH:
                buf = bytearray(out)
                self._index_record(buf)
                self._append(buf)
            else:
                self._append(out)
            self._encoder.events += 1
            self.calls_written += 1
            return True

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
        out += self._encoder.end_record(self.values_written)
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


_ROWS_FULL = ix.BATCH * len(ix.EVENT_COLUMNS)  # a full batch's length of Batch.rows

