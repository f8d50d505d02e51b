"""The event model: one frozen record per non-deterministic input of a run.

A run is an ordered log of :class:`Event`. Everything else (replay, diff,
drift, the TUI, the pytest plugin) reads that log; nothing keeps a private
notion of what a run is.

Events are converted to and from plain msgpack-able maps here, and only here,
so the field list, the cassette spec (docs/cassette-format.md) and the code
cannot drift apart. ``from_map`` validates every field's type: cassettes are
untrusted input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

Value: TypeAlias = (
    bool | int | float | str | bytes | list["Value"] | tuple["Value", ...]
    | dict[str, "Value"] | None
)
"""A JSON-like value as stored in a cassette (bytes and tuples allowed)."""


@dataclass(frozen=True, slots=True)
class CallSite:
    """Where in the user's code an event was asked for."""

    file: str
    """Absolute path of the source file."""
    line: int
    """1-based line number."""
    function: str
    """Name of the function (``<module>`` at top level)."""

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.function}"


@dataclass(frozen=True, slots=True)
class RecordedError:
    """An exception raised while an event was recorded, kept as data."""

    type: str
    """Qualified type name, ``module.QualName`` (``builtins.ValueError``)."""
    message: str
    """``str(exc)``."""
    traceback: str = ""
    """Formatted traceback text, for people (never executed or parsed)."""
    args: tuple[Value, ...] = ()
    """The exception's ``args`` when they are JSON-like, else ``(message,)``."""

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a streamed response, as it arrived."""

    data: bytes
    """The bytes exactly as the caller received them."""
    at_ns: int
    """Arrival time in ns after the event started."""


@dataclass(frozen=True, slots=True)
class Event:
    """One non-deterministic input of a run.

    ``seq`` numbers events in the order they were *asked for*; a cassette
    stores them in the order they *completed* (a stream completes late), so
    sort by ``seq`` for the run's own order.
    """

    seq: int
    """Sequence number, in the order events were asked for, from 0."""
    channel: str
    """What kind of input: ``http``, ``tool:NAME``, ``capture:NAME``, ``clock``,
    ``random``, ``uuid``, ``sleep``..."""
    request: Value
    """What the agent asked, in canonical form (good for matching and diffs)."""
    response: Value = None
    """What it got back, when it got a value (may hold bytes)."""
    error: RecordedError | None = None
    """The exception the call raised instead, if any."""
    start_ns: int = 0
    """Start time, ns after the run started (monotonic clock)."""
    duration_ns: int = 0
    """How long the call took, ns (for a stream: until it was closed)."""
    task: str = "main"
    """Logical task id: the same in every run, derived from where the task
    was created (``main``, ``main/2``, ``main/2/t0``)."""
    site: CallSite | None = None
    """Where in the user's code it was asked for."""
    chunks: tuple[Chunk, ...] = ()
    """For streamed responses: every chunk with its arrival time."""
    parent: int | None = None
    """``seq`` of the enclosing tool/capture event when this one happened
    inside it; replay serves the parent whole, so nested events are shown,
    never matched."""
    meta: Mapping[str, Value] = field(default_factory=dict)
    """Extra facts that take no part in matching (redactions, tool safety,
    stream flags)."""

    @property
    def ok(self) -> bool:
        """True when the call returned rather than raised."""
        return self.error is None

    def to_map(self) -> dict[str, Any]:
        """The event as a plain map for msgpack (cassette record ``ev``)."""
        out: dict[str, Any] = {
            "seq": self.seq,
            "channel": self.channel,
            "request": self.request,
            "start_ns": self.start_ns,
            "duration_ns": self.duration_ns,
            "task": self.task,
        }
        if self.response is not None:
            out["response"] = self.response
        if self.error is not None:
            e = self.error
            out["error"] = {"type": e.type, "message": e.message,
                            "traceback": e.traceback, "args": list(e.args)}
        if self.site is not None:
            out["site"] = [self.site.file, self.site.line, self.site.function]
        if self.chunks:
            out["chunks"] = [[c.data, c.at_ns] for c in self.chunks]
        if self.parent is not None:
            out["parent"] = self.parent
        if self.meta:
            out["meta"] = dict(self.meta)
        return out

    @classmethod
    def from_map(cls, m: Any) -> Event:
        """Build an event from a decoded map, checking every field's type.

        Raises ``ValueError`` on anything malformed; the reader turns that into
        a :class:`~replay.CassetteCorruptError` with the byte offset. Readers call
        it once per event loaded (a full read of a cassette is mostly this and
        msgpack), so it looks each key up once, checks exact types first (what
        msgpack builds) and fills a writable twin of the event's slots
        (``_EventSlots``, the same layout) that becomes the ``Event`` by one
        ``__class__`` assignment: setting 12 frozen slots through their
        descriptors costs 3 times as much, the frozen ``__init__`` more. Call
        sites repeat (one line makes many events), so equal ones are shared
        (``CallSite`` is frozen).
        """
        if type(m) is not dict and not isinstance(m, dict):
            raise ValueError("event record is not a map")
        get = m.get
        ev = _new(_EventSlots)
        ev.seq = seq = get("seq")
        ev.channel = channel = get("channel")
        ev.request = get("request", _ABSENT)
        ev.start_ns = start = get("start_ns")
        ev.duration_ns = duration = get("duration_ns")
        ev.task = task = get("task")
        if type(seq) is not int:
            raise ValueError("event field 'seq' is not an int")
        if type(channel) is not str and not isinstance(channel, str):
            raise ValueError("field 'channel' is not a string")
        if ev.request is _ABSENT:
            raise ValueError("event has no request")
        if type(start) is not int:
            raise ValueError("event field 'start_ns' is not an int")
        if type(duration) is not int:
            raise ValueError("event field 'duration_ns' is not an int")
        if type(task) is not str and not isinstance(task, str):
            raise ValueError("field 'task' is not a string")
        e = get("error", _ABSENT)
        ev.error = None if e is _ABSENT else _recorded_error(e)
        s = get("site", _ABSENT)
        if s is _ABSENT:
            ev.site = None
        else:
            if (type(s) is not list and not isinstance(s, _ARRAY)) or len(s) != 3:
                raise ValueError("event site is malformed")
            file, line, function = s
            if (type(file) is not str and not isinstance(file, str)) or type(line) is not int \
                    or (type(function) is not str and not isinstance(function, str)):
                raise ValueError("event site is malformed")
            key = (file, line, function)
            site = _SITES.get(key)
            ev.site = _site(key) if site is None else site
        raw = get("chunks", _ABSENT)
        if raw is _ABSENT:
            ev.chunks = ()
        else:
            if not isinstance(raw, _ARRAY):
                raise ValueError("event chunks is not a list")
            out = []
            for c in raw:
                if (type(c) is not list and not isinstance(c, _ARRAY)) or len(c) != 2:
                    raise ValueError("event chunk is malformed")
                data, at = c
                if (type(data) is not bytes and not isinstance(data, bytes)) \
                        or type(at) is not int:
                    raise ValueError("event chunk is malformed")
                chunk = _new(Chunk)
                _CHUNK_DATA(chunk, data)
                _CHUNK_AT(chunk, at)
                out.append(chunk)
            ev.chunks = tuple(out)
        ev.parent = parent = get("parent")
        if parent is not None and type(parent) is not int:
            raise ValueError("event parent is not an int")
        meta = get("meta", _NO_META)
        if type(meta) is not dict and not isinstance(meta, dict):
            raise ValueError("event meta is not a map")
        ev.meta = {} if meta is _NO_META else meta
        ev.response = get("response")
        ev.__class__ = cls  # type: ignore[assignment]  # the same slots: see _EventSlots
        return ev  # type: ignore[return-value]


class _EventSlots:
    """``Event``'s slots, writable: ``from_map`` fills one and assigns it the class
    ``Event`` (allowed between classes of the same slots and base)."""

    __slots__ = ("channel", "chunks", "duration_ns", "error", "meta", "parent", "request",
                 "response", "seq", "site", "start_ns", "task")
    seq: Any
    channel: Any
    request: Any
    response: Any
    error: Any
    start_ns: Any
    duration_ns: Any
    task: Any
    site: Any
    chunks: Any
    parent: Any
    meta: Any


_new = object.__new__
_NO_META: dict[str, Value] = {}
_ABSENT: Any = object()  # a key's default: absent, as distinct from nil
_ARRAY = (list, tuple)
_SITES: dict[tuple[str, int, str], CallSite] = {}  # call sites met, shared by from_map
_SITES_KEPT = 4096
_SITE_FILE, _SITE_LINE, _SITE_FUNCTION = (getattr(CallSite, f).__set__
                                          for f in ("file", "line", "function"))
_CHUNK_DATA, _CHUNK_AT = (getattr(Chunk, f).__set__ for f in ("data", "at_ns"))
assert [f.name for f in dataclasses.fields(Event)] == [
    "seq", "channel", "request", "response", "error", "start_ns", "duration_ns", "task",
    "site", "chunks", "parent", "meta"], "from_map fills every field of Event"
assert sorted(_EventSlots.__slots__) == sorted(Event.__slots__)
assert Event.from_map({"seq": 0, "channel": "c", "request": None, "start_ns": 0, "duration_ns": 0,
                       "task": "main"}) == Event(0, "c", None), "_EventSlots becomes an Event"


def _recorded_error(e: Any) -> RecordedError:
    """The RecordedError of an event's ``error`` map; ValueError when malformed."""
    if not isinstance(e, dict):
        raise ValueError("event error is not a map")
    args = e.get("args", [])
    if not isinstance(args, _ARRAY):
        raise ValueError("event error args is not a list")
    return RecordedError(_str(e, "type"), _str(e, "message"), _str(e, "traceback", ""),
                         tuple(args))


def _site(key: tuple[str, int, str]) -> CallSite:
    """The CallSite (file, line, function), made once and shared (``_SITES``): the
    caller checked the types and found none in ``_SITES``."""
    site = _new(CallSite)
    _SITE_FILE(site, key[0])
    _SITE_LINE(site, key[1])
    _SITE_FUNCTION(site, key[2])
    if len(_SITES) >= _SITES_KEPT:
        _SITES.clear()
    _SITES[key] = site
    return site


def _int(m: dict[str, Any], key: str) -> int:
    v = m.get(key)
    if type(v) is not int:
        raise ValueError(f"event field {key!r} is not an int")
    return v


def _str(m: dict[str, Any], key: str, default: str | None = None) -> str:
    v = m.get(key, default)
    if not isinstance(v, str):
        raise ValueError(f"field {key!r} is not a string")
    return v
