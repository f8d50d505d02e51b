"""Writing a cassette: crash-safe per event, packed and renamed into place at close.

Version 2 (the default) appends each event's framed records to a journal with
one ``write()`` and no compression, then packs it (``pack.py``) at ``close()``;
version 1 (kept for tests and old readers) flushes a zstd block per event.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import IO

import crc32c
import msgpack
import zstandard

from replay._cassette import index as ix
from replay._cassette.codec import (
    _FRAMING,
    BLOB_MIN_SIZE,
    CALL_CHANNELS,
    CALL_INLINE_SIZE,
    Encoder,
    pack_plain,
)
from replay._cassette.events import CallSite, Event, Value
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
from replay._cassette.redact import Redactor

_write = os.write
_pack = msgpack.Packer().pack  # ints and floats: the bytes Encoder's packer gives them
_crc = crc32c.crc32c
_frame_head = _FRAMING.pack
_VALUE_FLAGS = ix.FLAG_RESPONSE
_LONGEST_SCALAR = 9  # a msgpack int or float is at most 9 bytes

# -- writing -----------------------------------------------------------------

def encode_header(header: Header, limit: int = 1024 * 1024, *,
                  version: int = FORMAT_VERSION) -> bytes:
    """The header section's bytes (magic to CRC) for ``header``."""
    body = pack_plain(header.to_map())
    if len(body) > limit:
        raise ValueError(f"header map of {len(body)} bytes exceeds {limit}")
    head = _HEAD.pack(MAGIC, version, len(body))
    return head + body + _U32.pack(crc32c.crc32c(body, crc32c.crc32c(head[8:])))


class ValueShape:
    """The constant bytes of the ``ev`` records of one kind of value read.

    A clock or random read (``time.time()`` at one line of one task) writes the
    same record again and again but for ``seq``, ``start_ns``, ``duration_ns``
    and the value; :meth:`CassetteWriter.write_value` fills those in between
    these pieces, so the record is byte for byte what ``write`` would encode
    for the same :class:`Event` (the map in ``Event.to_map`` order), without
    building the event. Made by :meth:`CassetteWriter.value_shape`.
    """

    __slots__ = ("chan", "dur_key", "head", "mid", "site", "tail", "task")

    def __init__(self, head: bytes, mid: bytes, dur_key: bytes, tail: bytes, site: bytes,
                 chan: int, task: int) -> None:
        self.head = head
        """Map header, ``"k": "ev"`` and the ``seq`` key."""
        self.mid = mid
        """``channel`` and ``request`` with their keys, and the ``start_ns`` key."""
        self.dur_key = dur_key
        """The ``duration_ns`` key."""
        self.tail = tail
        """``task`` with its key, and the ``response`` key."""
        self.site = site
        """``site`` with its key."""
        self.chan = chan
        """The index's channel number."""
        self.task = task
        """The index's task number."""


_K_SEQ = pack_plain("k") + pack_plain("ev") + pack_plain("seq")
_START = pack_plain("start_ns")
_DURATION = pack_plain("duration_ns")
_RESPONSE = pack_plain("response")
_PARENT = pack_plain("parent")
_MAP_HEADS = tuple(bytes((0x80 | n,)) for n in range(16))  # msgpack fixmap headers


class CallShape:
    """The constant bytes of the ``ev`` records of one tool's calls from one line of one
    task: what :meth:`CassetteWriter.write_call` needs besides the call's own values.
    Made by :meth:`CassetteWriter.call_shape`."""

    __slots__ = ("chan", "keys", "meta", "mid", "site", "task", "task_id")

    def __init__(self, keys: int, mid: bytes, task: bytes, site: bytes, meta: bytes,
                 chan: int, task_id: int) -> None:
        self.keys = keys
        """Keys of the record map with no ``response`` and no ``parent``."""
        self.mid = mid
        """``channel`` with its key, and the ``request`` key."""
        self.task = task
        """``task`` with its key."""
        self.site = site
        """``site`` with its key."""
        self.meta = meta
        """``meta`` (redacted) with its key, or nothing when it is empty."""
        self.chan = chan
        """The index's channel number."""
        self.task_id = task_id
        """The index's task number."""


class CassetteWriter:
    """Writes a cassette, crash-safely, to ``path + ".partial"``.

    ``close()`` finishes the file and renames it over ``path`` (so an older
    cassette survives a crashed re-record); ``abort()`` leaves the
    ``.partial``. ``write()`` is thread-safe; when it returns, the event is in
    the OS (readable after SIGKILL; not fsynced until close).
    """

    def __init__(self, path: PathArg, header: Header, *,
                 transform: Callable[[Event], Event] | None = None, level: int = 3,
                 version: int = FORMAT_VERSION, journal: str | None = None) -> None:
        if not 1 <= level <= 19:  # 20+ ask for windows past default reader limits
            raise ValueError(f"zstd level must be 1..19, not {level}")
        if version not in (1, 2):
            raise ValueError(f"this release writes format versions 1 and 2, not {version}")
        self.version = version
        """The format version written."""
        self._level = level
        self.path = os.fspath(path)
        """Final path of the cassette."""
        self.partial_path = journal if journal is not None else self.path + ".partial"
        """Where the cassette is written until ``close()``: ``path + ".partial"``, or
        ``journal``, a slot the caller reuses for run after run (version 2: a
        closed or dropped run leaves it empty rather than deleted, which spares
        the file system a create and a delete per run)."""
        self._slot = journal is not None and version == 2
        self._transform = transform
        self._encoder = Encoder()
        self._cobj = zstandard.ZstdCompressor(level=level, write_checksum=True).compressobj()
        self._lock = threading.Lock()
        self._closed = False
        self._ended = False
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

    def value_shape(self, channel: str, request: Value, task: str,
                    site: CallSite) -> ValueShape | None:
        """The constant part of value events (an int or float response, no error, no
        parent, no meta) on ``channel`` with ``request``, of ``task`` at ``site``;
        None when they must go through :meth:`write` (this writer cannot, or the
        record could hold a blob)."""
        if not self.writes_values:
            return None
        p = pack_plain
        try:
            head = b"\x89" + p("k") + p("ev") + p("seq")
            mid = p("channel") + p(channel) + p("request") + p(request) + p("start_ns")
            tail = p("task") + p(task) + p("response")
            where = p("site") + p([site.file, site.line, site.function])
        except (ValueError, TypeError):
            return None
        dur_key = p("duration_ns")
        size = len(head) + len(mid) + len(dur_key) + len(tail) + len(where)
        if size + 4 * _LONGEST_SCALAR >= BLOB_MIN_SIZE:  # write() would look for blobs
            return None
        with self._lock:
            batch = self._batch
            return ValueShape(head, mid, dur_key, tail, where, batch.channel_id(channel),
                              batch.task_id(task))

    def write_value(self, shape: ValueShape, seqs: Iterator[int], start_ns: int,
                    duration_ns: int, response: int | float) -> int:
        """Append a value event of ``shape``: its ``seq`` is ``next(seqs)``, taken under
        the writer's lock. Returns the seq. Durable against SIGKILL on return, as
        :meth:`write`; the record is the one ``write`` would make of the same event.

        ``response`` is an int of at most 64 bits or a float (the caller's
        guarantee: a longer int would need the big-integer extension).
        """
        with self._lock:
            if self._closed or self._broken:
                raise ValueError(f"write to a closed CassetteWriter ({self.partial_path})")
            seq = next(seqs)
            payload = b"".join((shape.head, _pack(seq), shape.mid, _pack(start_ns),
                                shape.dur_key, _pack(duration_ns), shape.tail,
                                _pack(response), shape.site))
            pos = self._pos
            rows = self._batch.add_row(seq, pos, start_ns, duration_ns, ix.NO_PARENT,
                                       shape.chan, shape.task, _VALUE_FLAGS)
            out = _frame_head(len(payload), _crc(payload)) + payload
            if rows >= ix.BATCH:
                buf = bytearray(out)
                self._index_record(buf)
                self._append(buf)
            else:
                try:
                    done = _write(self._fd, out)
                except BaseException:
                    self._broken = True  # a part of a record may be in the file
                    raise
                self._pos = pos + len(out)
                if done < len(out):  # the OS took part of it: write the rest the long way
                    self._pos = pos + done
                    self._append(memoryview(out)[done:])
            self._encoder.events += 1
            self.values_written += 1
            return seq

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
                res = _RESPONSE + res
            tail = shape.site
            if parent is not None:
                keys += 1
                tail += _PARENT + _pack(parent)
            payload = b"".join((_MAP_HEADS[keys], _K_SEQ, _pack(seq), shape.mid, req,
                                _START, _pack(start_ns), _DURATION, _pack(duration_ns),
                                shape.task, res, tail, shape.meta))
            if len(payload) >= CALL_INLINE_SIZE:
                return False
            rows = self._batch.add_row(seq, self._pos, start_ns, duration_ns,
                                       ix.NO_PARENT if parent is None else parent, shape.chan,
                                       shape.task_id, _VALUE_FLAGS if res else 0)
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
            if self._closed or self._broken or self._ended:
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

    def _append(self, out: bytes | bytearray | memoryview) -> None:
        """One ``write()`` of ``out`` to the journal (more only if the OS writes less)."""
        try:
            done = os.write(self._fd, out)
            if done < len(out):
                view = memoryview(out)[done:]
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
        out += self._encoder.end_record()
        self._append(out)
        self._ended = True

    def _close_journal(self) -> None:
        """End the journal (last ``ix`` and ``end`` records), then pack it over ``path``.

        If packing fails the journal stays, complete, at ``partial_path``.
        """
        from replay._cassette.pack import pack_journal
        try:
            if not self._ended:
                self._end_journal()
        finally:
            self._file.close()
        pack_journal(self.partial_path, self.path, len(self._head), level=self._level)
        if self._slot:
            os.truncate(self.partial_path, 0)
        else:
            os.remove(self.partial_path)
        fsync_dir(self.path)

    def drop(self) -> None:
        """Discard the run unfinished: nothing packed, nothing fsynced. Its journal is
        deleted, or emptied when it is a slot (``journal=``) the caller reuses."""
        with self._lock:
            if not self._closed:
                self._closed = True
                try:
                    if self._slot:
                        os.ftruncate(self._fd, 0)
                finally:
                    self._file.close()
        if not self._slot:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.partial_path)

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


def fsync_dir(path: str) -> None:
    """Make a rename to ``path`` durable: fsync the folder holding it, where the OS
    lets us open a directory."""
    with contextlib.suppress(OSError):
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

