"""An event record decoded by msgspec into a typed struct: the packed reader's fast path.

``msgspec`` decodes MessagePack in C, checks the fields' types as it goes and
keeps a cache of short map keys (msgpack-python decodes and interns every key
anew); the event is then built from the struct's fields without checking them
again. Measured on bench_http's N = 5,000 cassette (callgrind, PYTHONHASHSEED=0),
see the commit that brought it.

This path only ever *accepts*: any record it does not take exactly as
``Event.from_map`` would (a missing or mistyped field, an unknown key, an error
map it cannot check, a msgspec error of any kind) is decoded again by
msgpack-python and ``Event.from_map``, which raise the documented error. The one
input the two read differently is a raw msgpack array used as a map key, which
no writer writes (a tuple key is ext type 2): msgspec makes it a tuple where
msgpack-python refuses it; the packed reader tries this path first both when
iterating and when indexing, so the two views of a file agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType
from msgspec.msgpack import Ext

from replay._cassette.events import (
    _CHUNK_AT,
    _CHUNK_DATA,
    _SITES,
    Chunk,
    Event,
    _EventSlots,
    _new,
    _recorded_error,
    _site,
)


class EventRecord(msgspec.Struct, forbid_unknown_fields=True):
    """The ``ev`` record's fields with the types ``Event.from_map`` checks
    (docs/cassette-format.md, "ev: one event")."""

    k: str
    seq: int
    channel: str
    request: Any
    start_ns: int
    duration_ns: int
    task: str
    response: Any = None
    error: Any = UNSET
    site: tuple[str, int, str] | UnsetType = UNSET
    chunks: list[tuple[bytes | Ext, int]] = []
    parent: int | None = None
    meta: dict[Any, Any] = {}


def record_decoder(ext_hook: Callable[[int, Any], Any]) -> msgspec.msgpack.Decoder[EventRecord]:
    """A decoder of event records; ``ext_hook`` resolves ext values in the untyped
    fields (blob references, tuples, big ints). A chunk's data that is an ext (a
    blob reference) comes back as an ``Ext``, resolved by :func:`event_of`."""
    return msgspec.msgpack.Decoder(EventRecord, ext_hook=ext_hook)


def event_of(r: EventRecord, ext_hook: Callable[[int, Any], Any]) -> Event:
    """The Event of a decoded record (its fields' types already checked by msgspec).
    Raises ValueError for a bad error map or a chunk whose reference is not bytes."""
    ev = _new(_EventSlots)
    ev.seq = r.seq
    ev.channel = r.channel
    ev.request = r.request
    ev.response = r.response
    ev.start_ns = r.start_ns
    ev.duration_ns = r.duration_ns
    ev.task = r.task
    ev.parent = r.parent
    ev.meta = r.meta
    e = r.error
    ev.error = None if e is UNSET else _recorded_error(e)
    s = r.site
    if s is UNSET:
        ev.site = None
    else:
        site = _SITES.get(s)
        ev.site = _site(s) if site is None else site
    raw = r.chunks
    if raw:
        out = []
        for data, at in raw:
            if type(data) is not bytes:  # an Ext: a blob reference, resolved as msgpack would
                data = ext_hook(data.code, data.data)  # type: ignore[union-attr]
                if type(data) is not bytes and not isinstance(data, bytes):
                    raise ValueError("event chunk is malformed")
            chunk = _new(Chunk)
            _CHUNK_DATA(chunk, data)
            _CHUNK_AT(chunk, at)
            out.append(chunk)
        ev.chunks = tuple(out)
    else:
        ev.chunks = ()
    ev.__class__ = Event  # type: ignore[assignment]  # the same slots: see _EventSlots
    return ev  # type: ignore[return-value]
