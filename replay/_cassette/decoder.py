"""Decoding cassette records, as hostile input.

:class:`Decoder` takes the decompressed stream chunk by chunk, splits it into
records (``codec.py`` says how they are framed), checks each CRC, decodes
each payload (our extension types and nothing else) and resolves blob
references.
"""

from __future__ import annotations

import functools
from typing import Any

import crc32c
import msgpack

from replay._cassette.codec import (
    _FRAMING,
    _TIMESTAMP,
    DEFAULT_MAX_RECORD,
    EXT_BIGINT,
    EXT_REF,
    EXT_TUPLE,
    MAX_BIGINT_BYTES,
    MAX_NESTING,
    MAX_TUPLE_DEPTH,
    RecordTooLargeError,
)
from replay._cassette.events import Event


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


def unpack_plain(data: bytes | memoryview) -> Any:
    """Decode a value that may hold tuples but no blob refs (the header map)."""
    decoder = Decoder()
    value = decoder.unpack(data)
    decoder._reject_foreign(value)
    return value


class Decoder:
    """Decodes record payloads in file order, resolving blob refs.

    Values behind a ref are shared, not copied: every event that uses blob N
    holds the same object, which keeps a long conversation's memory linear.
    Treat decoded values as read-only.
    """

    def __init__(self, max_record_size: int = DEFAULT_MAX_RECORD) -> None:
        self.blobs: list[Any] = []
        """Decoded blob values, by id."""
        self.events = 0
        """Event records decoded so far."""
        self.end: End | None = None
        """The end record, once read."""
        self._max = max_record_size
        self._buf = bytearray()  # the start of a record that continues in the next chunk
        self._checked: set[int] = set()  # ids of container blobs already scanned
        self._depth = 0  # tuple extensions being decoded, one inside the other
        self._unpackb = functools.partial(msgpack.unpackb, raw=False, strict_map_key=False,
                                          use_list=True, ext_hook=self._ext)

    @property
    def pending(self) -> int:
        """Bytes of an unfinished record waiting for the next chunk."""
        return len(self._buf)

    def feed(self, chunk: bytes, out: list[Event]) -> None:
        """Decode every record ``chunk`` (the next decompressed bytes) completes.

        Events are appended to ``out`` as they are decoded, so when this
        raises, ``out`` holds the complete events before the bad record.
        Raises RecordTooLargeError for a length over the limit, DecodeError
        (a ValueError) for anything else wrong.
        """
        buf = self._buf
        data: bytes | bytearray = chunk
        if buf:
            buf += chunk
            data = buf
        i, n = 0, len(data)
        # Slicing bytes is cheapest for the usual one-record chunk; a record
        # carried across chunks is read through a view (no copy of a big one).
        view = memoryview(data) if data is buf else None
        try:
            while n - i >= 8:
                length, crc = _FRAMING.unpack_from(data, i)
                if length > self._max:
                    raise RecordTooLargeError(
                        f"record of {length} bytes, over the {self._max} limit")
                stop = i + 8 + length
                if stop > n:
                    break
                if self.end is not None:
                    raise DecodeError("record after the end record")
                payload = data[i + 8:stop] if view is None else view[i + 8:stop]
                if crc32c.crc32c(payload) != crc:
                    raise DecodeError("record checksum mismatch")
                try:
                    obj = self.decode(payload, data, i + 8, stop)
                except (ValueError, TypeError, OverflowError, RecursionError) as exc:
                    raise DecodeError(f"bad record: {reason(exc)}") from None
                if type(obj) is Event:
                    out.append(obj)
                elif type(obj) is End:
                    self.end = obj
                i = stop
        finally:
            if view is not None:
                payload = b""  # drop the last slice, then the view, before resizing
                view.release()
        if data is buf:
            del buf[:i]
        elif i < n:
            self._buf = bytearray(chunk[i:])

    def _ext(self, code: int, data: bytes) -> Any:
        if code == EXT_REF:
            ident = _ref_id(data)
            if ident >= len(self.blobs):
                raise DecodeError(f"reference to blob {ident}, which is not defined before it")
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

        Raises ValueError (DecodeError among others), TypeError, OverflowError or
        RecursionError on anything malformed; the reader maps them to
        CassetteCorruptError.
        """
        m = self._unpackb(payload)
        # A Timestamp can only come from one of a few byte patterns; look for one
        # (C speed) and walk the decoded value only when the bytes allow it.
        if buf.find(b"\xff", start, end) >= 0 and _TIMESTAMP.search(buf, start, end):
            self._reject_foreign(m)
        if type(m) is not dict:
            raise DecodeError("record is not a map")
        kind = m.get("k")
        if kind == "ev":
            event = Event.from_map(m)
            self.events += 1
            return event
        if kind == "blob":
            ident = m.get("id")
            if type(ident) is not int or ident != len(self.blobs):
                raise DecodeError(f"blob id {ident!r} out of order (expected {len(self.blobs)})")
            if "v" not in m or len(m) != 3:
                raise DecodeError("blob record is malformed")
            value = m["v"]
            self.blobs.append(value)
            if type(value) in (dict, list, tuple):
                self._checked.add(id(value))
            return None
        if kind == "end":
            events, blobs = m.get("events"), m.get("blobs")
            if type(events) is not int or type(blobs) is not int or len(m) != 3:
                raise DecodeError("end record is malformed")
            return End(events, blobs)
        raise DecodeError(f"unknown record kind {kind!r}")

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
