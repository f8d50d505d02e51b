"""Msgpack encoding of cassette records, with content de-duplication.

Agents resend the whole conversation on every model call, so the same large
strings and maps appear again and again. :class:`Encoder` stores each large
value once, as a ``blob`` record, and writes a small reference wherever it
appears again; the file then grows with the *new* content of each turn, not
with the whole history. ``decoder.py`` resolves the references and checks
everything it reads (cassettes are untrusted input) with the limits defined
here, which the writer keeps to as well.

Records, as they follow each other in the decompressed stream (the file
around the stream is ``layout.py``): u32 LE payload length, u32 LE
CRC32C(payload), then a msgpack payload, one of

    {"k": "ev", <Event.to_map() fields>}     one event
    {"k": "blob", "id": N, "v": value}       a shared value, ids 0, 1, 2...
    {"k": "end", "events": E, "blobs": B}    clean end of the recording

Extension types: ``ExtType(1, <N big-endian in 1/2/4/8 bytes>)`` refers to blob N;
``ExtType(2, <msgpack array>)`` is a tuple; ``ExtType(3, <two's complement,
big-endian>)`` an integer beyond 64 bits. Nothing else is ever written, and
the decoder rejects anything else (msgpack Timestamps included).
See docs/cassette-format.md.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Callable, Mapping
from typing import Any, Final

import crc32c
import msgpack

from replay._cassette.errors import UnrecordableValueError
from replay._cassette.events import Event

EXT_REF: Final = 1
"""Extension code of a blob reference; its data is the blob id, big-endian."""
EXT_TUPLE: Final = 2
"""Extension code of a tuple; its data is the msgpack array of its items."""
EXT_BIGINT: Final = 3
"""Extension code of an integer outside msgpack's 64-bit range (a 128-bit
``getrandbits``, a big tool result); its data is the two's-complement
big-endian bytes."""
MAX_BIGINT_BYTES: Final = 4096
"""The longest big integer a reader accepts (32,768 bits)."""
MAX_TUPLE_DEPTH: Final = 8
"""Tuples nest at most this deep within one record. Each level is a nested
msgpack decode holding ~40 KiB of C stack, so a limit keeps a crafted file
from overflowing a thread's stack; the writer refuses deeper tuples."""

BLOB_MIN_SIZE: Final = 256
"""Writer policy: a str/bytes of at least this many bytes, or a map/array/tuple
whose plain msgpack encoding is at least this long, is stored as a blob.
Measured with ``bench/bench_format.py --thresholds`` (conversations of 100
and 200 turns): with 300-600 char messages 64, 128 and 256 give the same
file (70.5 KB at 200 turns, x2.02 from 100) while 512 misses the messages
(90.7 KB, x2.48); with 20-400 char messages 256 writes 34% faster than 64
for the same size. Readers do not depend on it: any value may be a blob or
inline."""

ITEM_BLOB_MIN_SIZE: Final = 64
"""Writer policy: a map inside an array that is itself walked (a conversation's
messages, a tool list) is stored as a blob from this many bytes. Every request of
a conversation repeats all of its earlier messages, short ones included; inline,
they grow the file with the square of the turns once the repeats fall in
different compressed frames (version 2 frames are compressed one by one):
400 turns of ~190-byte user messages took 428 KB against 109 KB at 200."""

CHUNK_BLOB_MIN_SIZE: Final = 64 * 1024
"""Writer policy: a chunk's bytes (an HTTP response body, or one piece of a stream)
are stored as a blob from this many bytes; shorter ones stay inline in the event,
where other values become blobs from :data:`BLOB_MIN_SIZE`. A body is new content
read from the world: an answer is sent back in later requests as parsed JSON (a str
in the request's body map, which the walk stores once), never as these bytes, so a
digest of them almost never finds a repeat. As a blob, a ~2 KB body cost the
recorder a BLAKE2b digest and a second record, and every reader a record, a cache
entry and a reference resolved in Python (a full read of 5,000 chat events: 7.7 ->
5.5 us an event, and the file 294 -> 229 KB, the blob framing gone). A body that
does repeat (a page polled, a document fetched again) is caught by zstd while the
repeats share a frame (a frame holds at least 512 KiB, so 8 copies of a body under
this size); from this size on a repeat may land in another frame, and a blob keeps
it once."""

CALL_INLINE_SIZE: Final = 4096
"""Writer policy: an event of a ``tool:`` or ``capture:`` channel whose record
encodes to fewer bytes is written whole, without blobs (other events: below
:data:`BLOB_MIN_SIZE`). A tool's result is new content, read from the world, not a
resent conversation: a digest of each part rarely finds a repeat, and costs more
than the encoding itself (a ~500-byte result: two blob records and two BLAKE2b
digests against one C pack). Where the agent then sends the result to a model, the
HTTP event's own walk stores it as a blob, so it is on file at most twice (and
once compressed, as both are written close together, in one zstd frame); a tool
that returns the same value again stores it again. The file still grows linearly
with the calls."""
CALL_CHANNELS: Final = ("tool:", "capture:")
"""Channel prefixes :data:`CALL_INLINE_SIZE` applies to."""

DEDUP_ENTRIES: Final = 1 << 16
"""Writer policy: the most blob digests the encoder remembers (~130 bytes each,
so ~8.5 MB). When a new event would pass it, the encoder forgets them all and
a value seen before is stored again as a new blob: a long run's writer stays
in bounded memory, and its file grows by the repeats it no longer finds."""

DEFAULT_MAX_RECORD: Final = 32 * 1024 * 1024
"""Largest record payload a default reader accepts; the writer refuses larger."""
DEFAULT_MAX_VALUES: Final = 1 << 19
"""Most msgpack values (array items, map keys and values, tuple items, at any
depth) in one record that a default reader accepts; the writer refuses more.
A value costs up to ~80 bytes decoded whatever its encoded size (an empty map
is one byte), so this bounds a record's decoded memory (~40 MiB) where its
byte size cannot."""
VALUE_COST: Final = 80
"""Decoded bytes charged per msgpack value on top of the payload's size: the
most one takes on CPython 3.11 (a one-entry map, 232 bytes for 3 values; an
empty map 72, a short str ~60, a float 32, a list slot 8)."""
MAX_NESTING: Final = 1024
"""msgpack's own nesting limit while decoding (arrays and maps inside each
other, within one msgpack document); the writer's packer stops at 511."""

_BLOB_HEAD: Final = b"\x83\xa1k\xa4blob\xa2id"  # {"k": "blob", "id": ...
_BLOB_VALUE: Final = b"\xa1v"  # ..., "v": ...}
# Every encoding msgpack would turn into a Timestamp (ext -1, 4/8/12 data bytes).
_TIMESTAMP = re.compile(
    rb"[\xd6\xd7]\xff|\xc7[\x04\x08\x0c]\xff|\xc8\x00[\x04\x08\x0c]\xff"
    rb"|\xc9\x00\x00\x00[\x04\x08\x0c]\xff"
)


_FRAMING: Final = struct.Struct("<II")  # payload length, CRC32C(payload)
_PAYLOAD_FIELDS: Final = ("request", "response", "error", "chunks", "meta")
"""The event fields whose large values are stored as blobs (the others are numbers,
names and the call site)."""


class OverLimitError(ValueError):
    """A record, or what the reader holds, would exceed a reader limit."""


class RecordTooLargeError(OverLimitError):
    """A record is larger than the reader's limit (or, writing, than the default
    one): too many bytes or too many values."""


def frame_record(payload: bytes) -> bytes:
    """``payload`` with its length and CRC32C in front."""
    return _FRAMING.pack(len(payload), crc32c.crc32c(payload)) + payload


# -- encoding ----------------------------------------------------------------

def _convert(obj: Any) -> Any:
    """A subclass of a JSON-like type as its base type; anything else cannot be
    recorded."""
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, int):
        if type(obj) is int:  # msgpack calls us for an int only on overflow
            size = (obj.bit_length() + 8) // 8
            if size > MAX_BIGINT_BYTES:
                raise UnrecordableValueError(obj, f"a cassette (ints of at most "
                                                  f"{MAX_BIGINT_BYTES * 8} bits)")
            return msgpack.ExtType(EXT_BIGINT, obj.to_bytes(size, "big", signed=True))
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, list):
        return list(obj)
    if isinstance(obj, tuple):
        return tuple(obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise UnrecordableValueError(obj, "a cassette")


def _tuple_hook(depth: int) -> Callable[[Any], Any]:
    """Packer hook (``strict_types``) for values inside ``depth - 1`` tuples."""

    def default(obj: Any) -> Any:
        if isinstance(obj, tuple):
            if depth > MAX_TUPLE_DEPTH:
                raise UnrecordableValueError(
                    obj, f"a cassette (tuples nest at most {MAX_TUPLE_DEPTH} deep)")
            items = msgpack.packb(list(obj), default=_HOOKS[depth], strict_types=True)
            return msgpack.ExtType(EXT_TUPLE, items)
        return _convert(obj)

    return default


_HOOKS: Final = tuple(_tuple_hook(d) for d in range(1, MAX_TUPLE_DEPTH + 2))
_default: Final = _HOOKS[0]


def pack_plain(value: Any) -> bytes:
    """Encode a value without de-duplication (the header map)."""
    try:
        return msgpack.packb(value, default=_default, strict_types=True)
    except (ValueError, OverflowError, TypeError) as exc:
        if isinstance(exc, UnrecordableValueError):
            raise
        raise UnrecordableValueError(value, f"a cassette header ({exc})") from exc


_SHORT_STR: Final = BLOB_MIN_SIZE // 4
"""A str shorter than this many characters is shorter than BLOB_MIN_SIZE bytes."""


class Encoder:
    """Turns events into record payloads, storing large values once.

    Not thread-safe: :class:`~replay._cassette.layout.CassetteWriter` calls it under its
    lock. ``encode_event`` is all-or-nothing: when it raises, no blob it had
    begun is remembered, so no later record can refer to an unwritten blob.
    """

    def __init__(self, max_record_size: int = DEFAULT_MAX_RECORD,
                 max_ids: int = DEDUP_ENTRIES) -> None:
        self._packer = msgpack.Packer(default=_default, strict_types=True)
        self.packer = self._packer
        """Its msgpack packer: what it packs values with (not thread-safe either)."""
        self._max = max_record_size
        self._max_ids = max_ids
        self._ids: dict[bytes, int] = {}
        self._new: dict[bytes, int] = {}
        self._payloads: list[bytes] = []
        self.blobs = 0
        """Blob records handed out so far."""
        self.events = 0
        """Event records handed out so far."""

    def encode_event(self, event: Event) -> bytes:
        """Framed records for one event: any new blobs it needs, then the event."""
        return b"".join(map(frame_record, self.encode_payloads(event)))

    def encode_payloads(self, event: Event) -> list[bytes]:
        """Record payloads for one event: any new blobs it needs, then the event."""
        fields = event.to_map()
        record: dict[str, Any] = {"k": "ev", **fields}
        limit = CALL_INLINE_SIZE if event.channel.startswith(CALL_CHANNELS) else BLOB_MIN_SIZE
        chunks = event.chunks
        try:
            # Probe with one C-speed pack: most events are small, and for them
            # this is the only encoding; a big one is packed again below, part
            # by part, which is cheap next to the Python walk it needs anyway.
            # A body chunk that long (an HTTP answer) makes the event big: no probe.
            big = bool(chunks) and len(chunks[0].data) >= limit
            data = b"" if big else self._packer.pack(record)
            if not big and len(data) < limit:  # nothing inside can be large enough,
                out = [data]  # or a tool's result: see CALL_INLINE_SIZE
            else:
                self._new.clear()
                self._payloads = []
                for key in _PAYLOAD_FIELDS:  # the rest are scalars, names and the site
                    if key in fields:
                        value = fields[key]
                        record[key] = (self._chunks(value) if key == "chunks"
                                       else self._walk(value))
                data = self._packer.pack(record)
                out = [*self._payloads, data]
        except UnrecordableValueError:
            raise
        except (ValueError, OverflowError, TypeError, RecursionError) as exc:
            raise UnrecordableValueError(
                event, f"event {event.seq} on channel {event.channel!r} ({exc})") from exc
        for p in out:
            if len(p) > self._max:
                raise RecordTooLargeError(
                    f"event {event.seq} needs a record of {len(p)} bytes; readers accept "
                    f"at most {self._max} by default")
            if len(p) > DEFAULT_MAX_VALUES and \
                    count_values(p, DEFAULT_MAX_VALUES) > DEFAULT_MAX_VALUES:
                raise RecordTooLargeError(
                    f"event {event.seq} needs a record of more than {DEFAULT_MAX_VALUES} "
                    f"msgpack values, which readers refuse by default")
        if len(out) > 1:
            if len(self._ids) + len(self._new) > self._max_ids:
                self._ids.clear()  # the spill: forget, and store repeats anew
            self._ids.update(self._new)
            self.blobs += len(self._new)
        self.events += 1
        return out

    def end_record(self, more: int = 0) -> bytes:
        """The framed ``end`` record with the final counts (``more``: events written
        without this encoder, which hold no blobs)."""
        return frame_record(self._packer.pack({"k": "end", "events": self.events + more,
                                               "blobs": self.blobs}))

    def _walk(self, v: Any, data: bytes | None = None) -> Any:
        """``v`` with its large parts replaced by refs.

        ``data`` is ``v``'s plain msgpack encoding when the caller has it. Only
        what encodes to at least :data:`BLOB_MIN_SIZE` bytes is looked into, its
        parts measured by one C-speed pack each: a small part (a header map, a
        short message) is never walked in Python. Bottom-up: a container's large
        children are replaced first, so its blob holds refs to earlier blobs.
        """
        t = type(v)
        if t is not str and t is not bytes and t is not dict and t is not list \
                and t is not tuple:
            if v is None or t is bool or t is int or t is float:
                return v
            return self._walk(_convert(v))  # subclass -> base type, or raises
        if t is str:
            if len(v) < _SHORT_STR or (len(v) if v.isascii() else
                                       len(v.encode("utf-8"))) < BLOB_MIN_SIZE:
                return v
            return self._blob(self._packer.pack(v))
        if t is bytes:
            return v if len(v) < BLOB_MIN_SIZE else self._blob(self._packer.pack(v))
        if data is None:
            data = self._packer.pack(v)
        if len(data) < BLOB_MIN_SIZE:
            return v
        if t is dict:
            out: dict[Any, Any] | None = None
            for key, x in v.items():
                y = self._walk(x)
                if y is not x:
                    if out is None:
                        out = dict(v)
                    out[key] = y
            return self._blob(data if out is None else self._packer.pack(out))
        items: list[Any] | None = None
        for i, x in enumerate(v):
            if type(x) is dict:
                packed = self._packer.pack(x)
                y = (self._walk(x, packed) if len(packed) >= BLOB_MIN_SIZE
                     else self._blob(packed) if len(packed) >= ITEM_BLOB_MIN_SIZE else x)
            else:
                y = self._walk(x)
            if y is not x:
                if items is None:
                    items = list(v)
                items[i] = y
        if items is None:
            return self._blob(data)
        return self._blob(self._packer.pack(items if t is list else tuple(items)))

    def _chunks(self, chunks: list[list[Any]]) -> list[list[Any]]:
        """An event's ``chunks`` with each chunk's bytes of at least
        :data:`CHUNK_BLOB_MIN_SIZE` a blob, and the list and its ``[data, at_ns]`` pairs
        left inline: they hold arrival times, new in every event, so as blobs they would
        never be shared (only cost two records more per streamed body to write and to
        read)."""
        return [[self._chunk_data(data), *rest] for data, *rest in chunks]

    def _chunk_data(self, data: Any) -> Any:
        if type(data) is not bytes:
            data = _convert(data)
        return data if len(data) < CHUNK_BLOB_MIN_SIZE else self._walk(data)

    def _blob(self, data: bytes) -> msgpack.ExtType:
        """A ref to the blob holding ``data`` (one packed value), made if new."""
        key = hashlib.blake2b(data, digest_size=16).digest()
        ident = self._ids.get(key)
        if ident is None:
            ident = self._new.get(key)
            if ident is None:
                ident = self.blobs + len(self._new)
                self._new[key] = ident
                self._payloads.append(
                    _BLOB_HEAD + self._packer.pack(ident) + _BLOB_VALUE + data)
        return msgpack.ExtType(EXT_REF, _ref_data(ident))


def _ref_data(ident: int) -> bytes:
    """A blob id as ref data: big-endian, in the fewest of 1, 2, 4 or 8 bytes
    (so a ref is a 3, 4, 6 or 10 byte fixext)."""
    size = 1 if ident < 0x100 else 2 if ident < 0x10000 else 4 if ident < 0x100000000 else 8
    return ident.to_bytes(size, "big")


# -- counting values -----------------------------------------------------------

# For each first byte of a msgpack value: (kind, fixed size or size of the
# length field). Kinds: 0 a value of fixed total size; 1 str/bin, a length
# field then the data; 2 array, 3 map (count in the low bits or a field);
# 4 ext, a length field, the type byte, the data; 5 fixext of fixed data size.
def _kinds() -> tuple[tuple[int, int], ...]:
    table = [(0, 1)] * 256
    for b in range(0x80, 0x90):
        table[b] = (3, 0)
    for b in range(0x90, 0xA0):
        table[b] = (2, 0)
    for b in range(0xA0, 0xC0):
        table[b] = (0, 1 + (b & 0x1F))
    table[0xC1] = (0, 0)  # never used: a size of 0 ends the walk
    for b, entry in {0xC4: (1, 1), 0xC5: (1, 2), 0xC6: (1, 4), 0xC7: (4, 1), 0xC8: (4, 2),
                     0xC9: (4, 4), 0xCA: (0, 5), 0xCB: (0, 9), 0xCC: (0, 2), 0xCD: (0, 3),
                     0xCE: (0, 5), 0xCF: (0, 9), 0xD0: (0, 2), 0xD1: (0, 3), 0xD2: (0, 5),
                     0xD3: (0, 9), 0xD4: (5, 1), 0xD5: (5, 2), 0xD6: (5, 4), 0xD7: (5, 8),
                     0xD8: (5, 16), 0xD9: (1, 1), 0xDA: (1, 2), 0xDB: (1, 4), 0xDC: (2, 2),
                     0xDD: (2, 4), 0xDE: (3, 2), 0xDF: (3, 4)}.items():
        table[b] = entry
    return tuple(table)


_KINDS: Final = _kinds()


def count_values(data: bytes | bytearray | memoryview, limit: int) -> int:
    """How many msgpack values the document ``data`` holds, itself included,
    reading only its headers; counting stops once past ``limit``.

    The data of a tuple extension is walked as the values it holds; other
    extensions count as one value. Malformed input ends the walk early (the
    decoder reports it); the count is never below what a decoder would build
    before failing, so it can be checked before decoding.
    """
    n, i, todo, count = len(data), 0, 1, 0
    while todo and i < n and count <= limit:
        todo -= 1
        count += 1
        b = data[i]
        kind, size = _KINDS[b]
        if kind == 0:
            if not size:
                break
            i += size
        elif kind == 1:
            i += 1 + size + int.from_bytes(data[i + 1:i + 1 + size], "big")
        elif kind == 2 or kind == 3:
            items = int.from_bytes(data[i + 1:i + 1 + size], "big") if size else b & 0x0F
            todo += items if kind == 2 else 2 * items
            i += 1 + size
        else:
            length = size if kind == 5 else int.from_bytes(data[i + 1:i + 1 + size], "big")
            head = 2 if kind == 5 else 2 + size
            if i + head <= n and data[i + head - 1] == EXT_TUPLE:
                todo += 1  # its data is one msgpack array: walk into it
                i += head
            else:
                i += head + length
    return count
