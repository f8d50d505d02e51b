"""Decoding cassette records as hostile input, within bounds.

:class:`Decoder` takes the decompressed stream chunk by chunk, splits it into
records (``codec.py`` says how they are framed), checks each CRC, decodes
each payload (our extension types and nothing else) and resolves blob
references. It bounds memory by three limits, each checked before the memory
is taken:

* **bytes per record**: a record's length is read from its framing before
  the payload is waited for;
* **values per record**: a msgpack value costs up to ``VALUE_COST`` bytes
  decoded whatever its encoded size (an empty map is one byte), so a payload
  longer than ``max_values`` bytes is walked (headers only) and refused if it
  holds more values; a shorter one cannot;
* **decoded bytes held** (``budget``): what the decoder keeps (every blob, as
  later records may refer to it, and the events when ``keep_events``), each
  charged its payload size plus ``VALUE_COST`` per value, with the record
  being read, which counts its bytes twice (the payload and what it decodes
  to). It is checked from the framing before the payload is waited for, and
  again with the values counted before decoding. No record may *expand*
  past the budget either: with every reference resolved (a blob's expansion
  counted at each reference), as a consumer that prints, hashes or compares
  a value walks it so, although the decoder shares blob values.

``keep_blob_values=False`` (``verify``) keeps a blob that is a str or bytes as
an empty one of the same type: the checks of the events that refer to it
need only its type.
"""

from __future__ import annotations

import array
import functools
import sys
from typing import Any

import crc32c
import msgpack

from replay._cassette.codec import (
    _FRAMING,
    _TIMESTAMP,
    DEFAULT_MAX_RECORD,
    DEFAULT_MAX_VALUES,
    EXT_BIGINT,
    EXT_REF,
    EXT_TUPLE,
    MAX_BIGINT_BYTES,
    MAX_NESTING,
    MAX_TUPLE_DEPTH,
    VALUE_COST,
    OverLimitError,
    RecordTooLargeError,
    count_values,
)
from replay._cassette.events import Event

_WORST = 2 + VALUE_COST
"""Decoded bytes a record of N bytes can take at most, per byte: its bytes, and
as many values as bytes."""


class DecodeError(ValueError):
    """A record is not something this writer could have produced."""


class End:
    """The decoded ``end`` record."""

    __slots__ = ("blobs", "events")

    def __init__(self, events: int, blobs: int) -> None:
        self.events = events
        self.blobs = blobs


def reason(exc: BaseException) -> str:
    """What a failed decode says, never empty (msgpack raises some errors bare)."""
    if isinstance(exc, msgpack.exceptions.StackError):
        return f"values nested more than {MAX_NESTING} deep"
    if isinstance(exc, msgpack.exceptions.FormatError):
        return "not msgpack (a reserved type byte)"
    return str(exc) or type(exc).__name__


def _ref_id(data: bytes) -> int:
    if len(data) not in (1, 2, 4, 8):
        raise DecodeError(f"blob reference of {len(data)} bytes")
    return int.from_bytes(data, "big")


def _may_hold_timestamp(buf: bytes | bytearray, start: int, end: int) -> bool:
    """Whether ``buf[start:end]`` may encode a msgpack Timestamp (which the decoder
    would build), so that the decoded value must be walked to look for one.

    Every Timestamp encoding holds a 0xff after 1 to 5 bytes of header; a
    regex over a large record costs ~15 ns a byte, so it only runs at the few
    0xff bytes there are. A record full of them is simply walked: it holds
    at most ``max_values`` values.
    """
    at = buf.find(b"\xff", start, end)
    if at < 0:
        return False
    if buf.count(b"\xff", at, end) > 32:
        return True
    while at >= 0:
        if any(_TIMESTAMP.match(buf, q, at + 1) for q in range(max(start, at - 5), at)):
            return True
        at = buf.find(b"\xff", at + 1, end)
    return False


def check_values(data: bytes | bytearray | memoryview, limit: int, what: str = "record") -> int:
    """How many values the msgpack ``data`` holds when it is longer than ``limit``
    bytes, else its length (a bound: a value takes at least a byte); raise
    RecordTooLargeError when over ``limit``."""
    if len(data) <= limit:
        return len(data)  # a value takes at least a byte
    values = count_values(data, limit)
    if values > limit:
        raise RecordTooLargeError(f"{what} of more than {limit} msgpack values "
                                  f"({len(data)} bytes)")
    return values


def unpack_plain(data: bytes | memoryview, *, max_values: int = DEFAULT_MAX_VALUES) -> Any:
    """Decode a value that may hold tuples but no blob refs (the header map).

    Raises OverLimitError for more than ``max_values`` values, ValueError (and
    TypeError, RecursionError) when malformed.
    """
    check_values(data, max_values, "header map")
    decoder = Decoder()
    value = decoder.unpack(data)
    decoder._reject_foreign(value)
    return value


class Decoder:
    """Decodes record payloads in file order, resolving blob refs, within bounds.

    Values behind a ref are shared, not copied: every event that uses blob N
    holds the same object, which keeps a long conversation's memory linear.
    Treat decoded values as read-only.
    """

    def __init__(self, max_record_size: int = DEFAULT_MAX_RECORD, *,
                 max_values: int = DEFAULT_MAX_VALUES, budget: int | None = None,
                 keep_events: bool = False, keep_blob_values: bool = True,
                 index_records: bool = False) -> None:
        self.index_records = index_records
        """Accept (and skip) ``ix`` records, as a version 2 journal holds."""
        self.done = 0
        """Stream offset of the first byte not yet decoded (on an error, of the bad record)."""
        self.event_pos: array.array[int] = array.array("Q")
        """Stream offset of every event record decoded."""
        self.blobs: list[Any] = []
        """Decoded blob values, by id."""
        self.events = 0
        """Event records decoded so far."""
        self.end: End | None = None
        """The end record, once read."""
        self.held = 0
        """Decoded bytes charged for what is kept (see the module docstring)."""
        self.budget = sys.maxsize if budget is None else budget
        """Most decoded bytes held at once; a record may expand to no more."""
        self._max = max_record_size
        self._max_values = max_values
        self._keep_events = keep_events
        self._keep_blob_values = keep_blob_values
        self._sizes = array.array("q")  # each blob's expanded size, by id
        self._values = 0  # values in containers of the record being decoded
        self._expanded = 0  # expanded sizes of the blobs it refers to
        self._buf = bytearray()  # the start of a record that continues in the next chunk
        self._checked: set[int] = set()  # ids of container blobs already scanned
        self._depth = 0  # tuple extensions being decoded, one inside the other
        self._unpackb = functools.partial(msgpack.unpackb, raw=False, strict_map_key=False,
                                          use_list=True, ext_hook=self._ext,
                                          list_hook=self._count_list,
                                          object_hook=self._count_map)

    @property
    def pending(self) -> int:
        """Bytes of an unfinished record waiting for the next chunk."""
        return len(self._buf)

    def feed(self, chunk: bytes, out: list[Event]) -> None:
        """Decode every record ``chunk`` (the next decompressed bytes) completes.

        Events are appended to ``out`` as they are decoded, so when this
        raises, ``out`` holds the complete events before the bad record.
        Raises OverLimitError (RecordTooLargeError for one record) for a
        limit, DecodeError (a ValueError) for anything else wrong.
        """
        buf = self._buf
        base = self.done - len(buf)
        data: bytes | bytearray = chunk
        if buf:
            buf += chunk
            data = buf
        i, n = 0, len(data)
        # Slicing bytes is cheapest for the usual one-record chunk; a record
        # carried across chunks is read through a view (no copy of a big one).
        view = memoryview(data) if data is buf else None
        budget, max_values = self.budget, self._max_values
        try:
            while n - i >= 8:
                length, crc = _FRAMING.unpack_from(data, i)
                if length > self._max:
                    raise RecordTooLargeError(
                        f"record of {length} bytes, over the {self._max} limit")
                # Unless it is long, or the budget is close, a record cannot
                # hold too many values nor decode to too much: no need to look.
                careful = length > max_values or self.held + _WORST * length > budget
                if careful and self.held + 2 * length > budget:
                    raise OverLimitError(
                        f"record of {length} bytes: reading it beside the {self.held} "
                        f"decoded bytes held would pass the {budget}-byte budget")
                stop = i + 8 + length
                if stop > n:
                    break
                if self.end is not None:
                    raise DecodeError("record after the end record")
                payload = data[i + 8:stop] if view is None else view[i + 8:stop]
                if crc32c.crc32c(payload) != crc:
                    raise DecodeError("record checksum mismatch")
                if careful:
                    self._admit(payload)
                try:
                    obj = self.decode(payload, data, i + 8, stop)
                except OverLimitError:
                    raise
                except (ValueError, TypeError, OverflowError, RecursionError) as exc:
                    raise DecodeError(f"bad record: {reason(exc)}") from None
                if type(obj) is Event:
                    out.append(obj)
                    self.event_pos.append(base + i)
                elif type(obj) is End:
                    self.end = obj
                i = stop
        finally:
            self.done = base + i
            if view is not None:
                payload = b""  # drop the last slice, then the view, before resizing
                view.release()
        if data is buf:
            del buf[:i]
        elif i < n:
            self._buf = bytearray(chunk[i:])
        self.done = base + n

    def _admit(self, payload: bytes | bytearray | memoryview) -> None:
        """Check the values and the decoded size of a record before decoding it."""
        length = len(payload)
        values = check_values(payload, self._max_values)
        if self.held + 2 * length + VALUE_COST * values > self.budget:
            if values == length:  # only a bound: count them
                values = count_values(payload, length)
            if self.held + 2 * length + VALUE_COST * values > self.budget:
                raise OverLimitError(
                    f"record of {length} bytes and {values} msgpack values: decoding it "
                    f"beside the {self.held} decoded bytes held would pass the "
                    f"{self.budget}-byte budget")

    def _count_list(self, items: list[Any]) -> list[Any]:
        self._values += len(items)
        return items

    def _count_map(self, m: dict[Any, Any]) -> dict[Any, Any]:
        self._values += 2 * len(m)
        return m

    def _ext(self, code: int, data: bytes) -> Any:
        if code == EXT_REF:
            ident = _ref_id(data)
            if ident >= len(self.blobs):
                raise DecodeError(f"reference to blob {ident}, which is not defined before it")
            self._expanded += self._sizes[ident]
            return self.blobs[ident]
        if code == EXT_TUPLE:
            if self._depth >= MAX_TUPLE_DEPTH:
                raise DecodeError(f"tuples nested more than {MAX_TUPLE_DEPTH} deep")
            self._depth += 1
            try:
                items = self.unpack(data)
            finally:
                self._depth -= 1
            if type(items) is not list:
                raise DecodeError("tuple extension does not hold an array")
            return tuple(items)
        if code == EXT_BIGINT:
            if not 0 < len(data) <= MAX_BIGINT_BYTES:
                raise DecodeError(f"big integer of {len(data)} bytes")
            return int.from_bytes(data, "big", signed=True)
        raise DecodeError(f"unknown msgpack extension type {code}")

    def unpack(self, data: bytes | bytearray | memoryview) -> Any:
        """One msgpack value, with our extension types and nothing else."""
        return self._unpackb(data)

    def decode(self, payload: bytes | bytearray | memoryview, buf: bytes | bytearray, start: int,
               end: int) -> Event | End | None:
        """Decode ``payload`` (``buf[start:end]``): an Event, the End, or None for a blob.

        Raises OverLimitError when the record expands, or what is held would
        grow, past the budget; ValueError (DecodeError among others),
        TypeError, OverflowError or RecursionError on anything malformed (the
        reader maps them to CassetteCorruptError).
        """
        self._values = 1
        self._expanded = 0
        m = self._unpackb(payload)
        if buf.find(b"\xff", start, end) >= 0 and _may_hold_timestamp(buf, start, end):
            self._reject_foreign(m)
        if type(m) is not dict:
            raise DecodeError("record is not a map")
        cost = (end - start) + VALUE_COST * self._values
        expanded = cost + self._expanded
        if expanded > self.budget:
            raise OverLimitError(f"record expands to {expanded} decoded bytes with its blob "
                                 f"references resolved, over the {self.budget}-byte budget")
        kind = m.get("k")
        if kind == "ev":
            event = Event.from_map(m)
            self.events += 1
            if self._keep_events:
                self.held += cost
                if self.held > self.budget:
                    self._hold(0)
            return event
        if kind == "blob":
            ident = m.get("id")
            if type(ident) is not int or ident != len(self.blobs):
                raise DecodeError(f"blob id {ident!r} out of order (expected {len(self.blobs)})")
            if "v" not in m or len(m) != 3:
                raise DecodeError("blob record is malformed")
            value = m["v"]
            if not self._keep_blob_values and type(value) in (str, bytes):
                value, cost = type(value)(), VALUE_COST
            self._hold(cost)
            self.blobs.append(value)
            self._sizes.append(expanded)
            if type(value) in (dict, list, tuple):
                self._checked.add(id(value))
            return None
        if kind == "ix" and self.index_records:
            return None
        if kind == "end":
            events, blobs = m.get("events"), m.get("blobs")
            if type(events) is not int or type(blobs) is not int or len(m) != 3:
                raise DecodeError("end record is malformed")
            return End(events, blobs)
        raise DecodeError(f"unknown record kind {kind!r}")

    def _hold(self, cost: int) -> None:
        self.held += cost
        if self.held > self.budget:
            raise OverLimitError(f"decoded data held reaches {self.held} bytes, over the "
                                 f"{self.budget}-byte budget")

    def _reject_foreign(self, v: Any) -> None:
        """Raise if ``v`` holds a type this library never writes (a Timestamp)."""
        stack = [v]
        while stack:
            x = stack.pop()
            t = type(x)
            if t is dict:
                if id(x) not in self._checked:
                    stack.extend(x.keys())
                    stack.extend(x.values())
            elif t is list or t is tuple:
                if id(x) not in self._checked:
                    stack.extend(x)
            elif not (x is None or t in (str, bytes, int, float, bool)):
                raise DecodeError(f"record holds a {t.__name__}, which cassettes never contain")
