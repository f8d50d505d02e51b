"""An event asked for and not yet completed (:class:`Pending`), and how events are built.

Split from ``session.py``: the session hands a :class:`Pending` to the
interceptor that asked, which completes it with ``finish`` or ``fail``; the
event is then built through its slots (:func:`new_event`) and written through
the session.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, Protocol

from replay._capture import exc as _exc
from replay._cassette.events import CallSite, Chunk, Event, RecordedError, Value


class Session(Protocol):
    """What a pending event needs of its session (``session.Session``)."""

    t0: int
    """Run start on the perf counter."""
    active: bool
    """False once the run stopped."""
    unfinished: dict[int, Callable[[], None]]
    """Completions of events their caller left open, run as the run stops."""

    def emit(self, event: Event) -> None:
        """Write a completed event."""

_perf_ns = time.perf_counter_ns

_NO_META: dict[str, Value] = {}
_EVENT_FIELDS = ("seq", "channel", "request", "response", "error", "start_ns", "duration_ns",
                 "task", "site", "chunks", "parent", "meta")


def _event_maker() -> Callable[..., Event]:
    """``Event(...)`` by position, built the fast way when the model allows it.

    A frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``; calling the slots' own setters is about twice as
    fast, and this runs once per recorded event. Any other shape of
    :class:`Event` (fields added, a ``__post_init__``) gets the normal
    constructor.
    """
    names = tuple(f.name for f in dataclasses.fields(Event))
    slots = getattr(Event, "__slots__", ())
    if names != _EVENT_FIELDS or set(slots) != set(names) or hasattr(Event, "__post_init__"):
        def slow(*values: Any) -> Event:
            return Event(**dict(zip(_EVENT_FIELDS, values, strict=True)))
        return slow
    new = object.__new__
    (s_seq, s_channel, s_request, s_response, s_error, s_start, s_duration, s_task, s_site,
     s_chunks, s_parent, s_meta) = (getattr(Event, n).__set__ for n in names)

    def fast(seq: int, channel: str, request: Value, response: Value,
             error: RecordedError | None, start_ns: int, duration_ns: int, task: str,
             site: CallSite | None, chunks: tuple[Chunk, ...], parent: int | None,
             meta: dict[str, Value]) -> Event:
        ev = new(Event)
        s_seq(ev, seq)
        s_channel(ev, channel)
        s_request(ev, request)
        s_response(ev, response)
        s_error(ev, error)
        s_start(ev, start_ns)
        s_duration(ev, duration_ns)
        s_task(ev, task)
        s_site(ev, site)
        s_chunks(ev, chunks)
        s_parent(ev, parent)
        s_meta(ev, meta)
        return ev
    return fast


new_event = _event_maker()
"""``new_event(seq, channel, request, response, error, start_ns, duration_ns, task,
site, chunks, parent, meta)``: a new :class:`Event`."""


def finish_open(session: Session) -> None:
    """Complete the events the run's code left open (``session.unfinished``: a
    streamed response neither read to its end nor closed, as an exception in the
    loop reading it leaves it), as they stand: called as the run stops, while its
    session is still active, so they are in its cassette."""
    unfinished = session.unfinished
    while unfinished:
        try:
            _, complete = unfinished.popitem()
        except KeyError:  # completed meanwhile by the thread reading it
            break
        complete()


class Pending:
    """An event that has been asked for and not yet completed."""

    __slots__ = ("channel", "meta", "parent", "recorded", "request", "seq", "session",
                 "site", "start_ns", "task")

    def __init__(self, session: Session, seq: int, channel: str, request: Value, task: str,
                 site: CallSite | None, start_ns: int, parent: int | None,
                 recorded: Event | None, meta: dict[str, Value] | None) -> None:
        self.session = session
        self.seq = seq
        self.channel = channel
        self.request = request
        self.task = task
        self.site = site
        self.start_ns = start_ns
        self.parent = parent
        self.recorded = recorded
        self.meta = meta

    def elapsed_ns(self) -> int:
        """ns since this event started (for stream chunk times)."""
        return _perf_ns() - self.session.t0 - self.start_ns

    def finish(self, response: Value = None, *, chunks: tuple[Chunk, ...] = (),
               meta: dict[str, Value] | None = None) -> Event:
        """The call returned ``response``: complete and write the event."""
        return self._complete(response, None, chunks, meta)

    def fail(self, exc: BaseException, *, response: Value = None,
             chunks: tuple[Chunk, ...] = (), meta: dict[str, Value] | None = None) -> Event:
        """The call raised ``exc``: complete the event with the recorded error.

        ``response`` keeps what arrived before the failure (a stream's status and
        headers when it broke mid-way), so replay gives back both.
        """
        return self._complete(response, exc, chunks, meta)

    def _complete(self, response: Value, exc: BaseException | None,
                  chunks: tuple[Chunk, ...], meta: dict[str, Value] | None) -> Event:
        own = self.meta
        merged = {**own, **meta} if own and meta else dict(own or meta or _NO_META)
        session = self.session
        event = new_event(
            self.seq, self.channel, self.request, response,
            _exc.to_record(exc) if exc is not None else None,
            self.start_ns, _perf_ns() - session.t0 - self.start_ns, self.task,
            self.site, chunks, self.parent, merged)
        if session.active:  # else a task or thread outlived the run: its cassette is done
            session.emit(event)
        return event
