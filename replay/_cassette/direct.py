"""The writer's short paths: a value read's or a tool call's event written straight from
its values into the journal (issue 16), without building an :class:`Event`.

:class:`DirectWrites` is a part of :class:`~replay._cassette.writer.CassetteWriter`
(its base class, kept here to keep each module to one idea): the records are
those :meth:`CassetteWriter.write` makes of the same events, byte for byte, the
constant parts encoded once per kind of event (``shapes.py``). Each event is
one copy into the journal's map (or one ``write()``) under the writer's lock,
durable against SIGKILL when the method returns, as ``write``'s.
"""

from __future__ import annotations

import mmap
import threading
from collections.abc import Callable, Iterator
from typing import Any

import crc32c
import msgpack

from replay._cassette import index as ix
from replay._cassette import shapes as sh
from replay._cassette.codec import _FRAMING, CALL_CHANNELS, CALL_INLINE_SIZE, pack_plain
from replay._cassette.events import CallSite, Event, Value
from replay._cassette.redact import Redactor
from replay._cassette.shapes import CallShape, ValueShape

_pack = msgpack.Packer().pack  # ints and floats: the bytes Encoder's packer gives them
_SHORT = tuple(_pack(n) for n in range(2048))
"""``_pack(n)`` of the durations most value reads take (ns), looked up, not packed."""
_SHORTEST = len(_SHORT)
_crc = crc32c.crc32c
_frame_head = _FRAMING.pack
_join = b"".join
_row_head = ix.ROW_HEAD.pack
_row = ix.ROW.pack
_ROWS_FULL = ix.BATCH * len(ix.EVENT_COLUMNS)  # a full batch's length of Batch.rows


_LEAVES = frozenset({str, bytes, int, float, bool, type(None)})  # as Redactor.clean's


def _clean(red: Redactor, packed: bytes, request: Any, response: Any, flat: bool,
           leafy: bool) -> bool:
    """``red.clean(packed, request, response)``, in fewer steps when ``request`` is flat
    (see :meth:`DirectWrites.write_call`) and ``response`` a leaf or a map of leaves
    (which ``leafy`` says without a look at its values): the same scan, then the map
    keys' cached verdicts (``Redactor._clear``)."""
    if not red.quiet(packed):
        return False
    if flat:
        clear: set[str] = red._clear  # type: ignore[attr-defined]
        if "args" in clear and clear.issuperset(request["args"]):
            t = type(response)
            if t is dict:
                if clear.issuperset(response) and (
                        leafy or _LEAVES.issuperset(map(type, response.values()))):
                    return True
            elif t in _LEAVES:
                return True
    return red.clean(packed, request, response, scanned=True)


class DirectWrites:
    """:meth:`value_shape` / :meth:`write_value` and :meth:`call_shape` /
    :meth:`write_call`, the writer's short paths. The attributes below are the
    writer's (set by ``CassetteWriter.__init__``)."""

    partial_path: str
    writes_values: bool
    values_written: int
    calls_written: int
    _lock: threading.Lock
    _stopped: bool
    _transform: Callable[[Event], Event] | None
    _redactor: Redactor | None
    _pack_value: Callable[[Any], bytes]
    _batch: ix.Batch
    _rows: Any
    _pos: int
    _base: int
    _map: mmap.mmap | None

    def _append(self, out: bytes | bytearray) -> None:
        raise NotImplementedError  # CassetteWriter's

    def _index_record(self, out: bytearray) -> None:
        raise NotImplementedError  # CassetteWriter's

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
            payload = _join((shape.head, _pack(seq), shape.mid, _pack(start_ns), shape.dur_key,
                             _SHORT[duration_ns] if 0 <= duration_ns < _SHORTEST
                             else _pack(duration_ns), shape.tail,
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
                   meta: dict[str, Value], names: tuple[str, ...] = ()) -> CallShape | None:
        """The constant part of the events of calls on ``channel`` (a ``tool:`` or
        ``capture:`` one) of ``task`` at ``site`` with ``meta`` and no error; None when
        they must go through :meth:`write` (this writer cannot write them directly).
        ``names``: the tool's parameter names (for :attr:`CallShape.clear`)."""
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
        clear = None
        if isinstance(red, Redactor) and all(
                type(n) is str and red._key(n) == (False, False) for n in ("args", *names)):
            clear = red._clear  # type: ignore[attr-defined]
        with self._lock:
            batch = self._batch
            return CallShape(8 + bool(meta), mid, own, where, extra,
                             batch.channel_id(channel), batch.task_id(task), clear)

    def write_call(self, shape: CallShape, seq: int, start_ns: int, duration_ns: int,
                   parent: int | None, request: Value, response: Value,
                   flat: bool = False, leafy: bool = False, clear: bool = False) -> bool:
        """Append the event of a call of ``shape`` that returned ``response``: the record
        :meth:`write` would make of it (redacted, then encoded), when it takes no
        blob: True, and durable against SIGKILL on return. False (nothing written):
        the caller writes the event with :meth:`write`, which looks for blobs.

        Redaction: one scan of the values' encoding decides for most calls
        (:meth:`Redactor.clean`); when it finds an anchor, the values are redacted
        as :meth:`write` would (``Redactor.value``), and encoded again if changed.
        ``flat``: the caller's word that ``request`` is ``{"args": {name: value}}``
        with values of ``str``, ``int``, ``bool``, ``bytes`` or ``None`` only;
        ``leafy``: that ``response``, if a ``dict``, has values of those types or
        ``float`` only; ``clear``: that ``request`` is flat, ``shape.clear`` is not None
        and ``response`` is a leaf or a map of leaves with keys all in ``shape.clear``
        (no key asks for redaction: the scan alone decides).
        The record goes into the journal as :meth:`write_value`'s does."""
        lock = self._lock
        lock.acquire()
        try:
            if self._stopped:
                raise ValueError(f"write to a closed CassetteWriter ({self.partial_path})")
            pack = self._pack_value
            try:
                req = pack(request)
                res = b"" if response is None else pack(response)
                if len(req) + len(res) >= CALL_INLINE_SIZE:
                    return False
                red = self._redactor
                if red is not None and not (red.quiet(req + res) if clear else
                                            _clean(red, req + res, request, response, flat,
                                                   leafy)):
                    value = red.value
                    if (new := value(request)) is not request:
                        req = pack(new)
                    if (new := value(response)) is not response:
                        res = b"" if new is None else pack(new)
            except (ValueError, OverflowError, TypeError, RecursionError):
                return False  # write() says why, as for any event
            if res:  # a response (None has none): one key more
                more, task, flags = 1, shape.task_res, ix.FLAG_RESPONSE
            else:
                more, task, flags = 0, shape.task, 0
            if parent is None:
                tail, row_parent = shape.end, ix.NO_PARENT
            else:
                more += 1
                tail, row_parent = shape.site + sh.PARENT + _pack(parent) + shape.meta, parent
            payload = _join((shape.heads[more], _pack(seq), shape.mid, req, sh.START,
                             _pack(start_ns), sh.DURATION, _pack(duration_ns), task, res, tail))
            size = len(payload)
            if size >= CALL_INLINE_SIZE:
                return False
            pos = self._pos
            rows = self._rows
            rows.frombytes(_row(seq, pos, start_ns, duration_ns, row_parent, shape.chan,
                                shape.task_id, flags))
            self.calls_written += 1
            m = self._map
            if m is not None:
                at = self._base + pos + 8
                end = at + size
                try:
                    m[at:end] = payload
                except IndexError:
                    m = None
                else:
                    m[at - 8:at] = _frame_head(size, _crc(payload))
                    self._pos = end - self._base
            if m is None:
                self._append(_frame_head(size, _crc(payload)) + payload)
            if len(rows) >= _ROWS_FULL:
                buf = bytearray()
                self._index_record(buf)
                self._append(buf)
            return True
        finally:
            lock.release()
