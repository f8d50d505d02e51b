"""A run in progress: the one object every interceptor talks to.

In record mode a session numbers events, stamps them with time, logical task
and call site, and hands completed events to the cassette writer. In replay
mode it answers each request from the recording through the matcher, and
stops the run with :class:`DivergenceError` when it cannot. A session with
both (new-events, fork) answers what the recording can and runs the rest
live; it writes a new cassette of the run as it happened: the recorded events
it served, renumbered in this run's order, and the live ones.

A session belongs to the context that opened it, not to the process: the
logical task state in :data:`replay._capture.tasks.CURRENT` names it, and
asyncio tasks, threads and executor work started inside inherit it (see
``taskhooks``). Any number of sessions record and replay at once, each into
its own cassette; the patches are installed while any is open and each
intercepted call finds its own run through ``current()``, the interceptors'
fast check, or passes straight through when it belongs to none.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any, Protocol, TypeVar

from replay._capture import callsite as _callsite
from replay._capture import exc as _exc
from replay._capture import tasks as _tasks
from replay._capture.matcher import Matcher
from replay._capture.tasks import TaskState
from replay._cassette.divergence import Divergence
from replay._cassette.errors import DivergenceError
from replay._cassette.events import CallSite, Chunk, Event, RecordedError, Value
from replay._cassette.redact import GENERATED_CHANNELS

T = TypeVar("T")

LENIENT_CHANNELS = frozenset({"clock", "random", "uuid"})
"""Value channels whose reads by libraries (not the user's code) replay leniently."""
BACKGROUND = "background"
"""``meta["lib"]`` of every event of a library's background worker: matched by task
and call (channel, method, URL path, function), whatever the arguments (an
exporter batches what the clock says)."""
ONCE_TASK = "*"
"""The task of values read once per run (:meth:`Session.once`)."""
ONCE = "once"

_perf_ns = time.perf_counter_ns


class RecordMode(enum.Enum):
    """How a cassette is used. Unknown values are rejected loudly."""

    RECORD = "record"
    """Run live and record every event (overwrites the cassette)."""
    REPLAY = "replay"
    """Strict replay: answer everything from the cassette, never the network."""
    AUTO = "auto"
    """Replay when the cassette exists, else record it."""
    NEW_EVENTS = "new-events"
    """Replay what matches; run live and append what the cassette lacks."""

    @classmethod
    def parse(cls, value: RecordMode | str) -> RecordMode:
        """The mode named by ``value``; ValueError listing the valid names."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown record mode {value!r}; use one of: {names}") from None


class RunSettings(Protocol):
    """What a session hook may read of the run that opens the session."""

    path: str
    allow_damaged: bool
    options: dict[str, Any]


SESSION_HOOKS: list[Callable[[Session, RunSettings], None]] = []
"""Called with each new session and its run before it starts (HTTP settings,
breakpoints, drift probes). Layers above register here."""

BUSY: ContextVar[bool] = ContextVar("agent_replay_busy", default=False)
"""True while an interceptor runs the real call: nested calls pass through."""
PARENT: ContextVar[int | None] = ContextVar("agent_replay_parent", default=None)
"""``seq`` of the tool/capture whose body is running (its events are nested)."""

_get_state = _tasks.CURRENT.get


def current() -> Session | None:
    """The open session the running code belongs to, or None (outside every run)."""
    state = _get_state()
    if state is None:
        return None
    session: Session = state.session
    return session if session.active else None


_OPEN: dict[int, Session] = {}
_OPEN_LOCK = threading.Lock()


def open_sessions() -> tuple[Session, ...]:
    """Every session open in the process now, in whichever context."""
    with _OPEN_LOCK:
        return tuple(_OPEN.values())


def require_no_session() -> None:
    """Raise :class:`SessionError` when the running context belongs to an open session."""
    outer = current()
    if outer is not None:
        from replay._cassette.errors import SessionError
        raise SessionError(
            f"a {outer.mode.value} session is already active in this context (this task "
            "or thread, or the one that started it); sessions cannot be nested. Runs "
            "that happen at the same time each open their own session in their own "
            "asyncio task or thread (see docs/concurrency.md)")


def activate(session: Session) -> Token[TaskState | None]:
    """Open ``session`` in the running context: this task or thread, and everything
    it starts from now on, belong to its run (logical task ``main``).

    Raises :class:`SessionError` when the context already belongs to an open
    session (sessions do not nest); concurrent sessions are opened side by side,
    each in its own task or thread. Returns the token :func:`deactivate` takes.
    """
    require_no_session()
    session.active = True
    with _OPEN_LOCK:
        _OPEN[id(session)] = session
    return _tasks.CURRENT.set(TaskState("main", session))


def deactivate(session: Session, token: Token[TaskState | None] | None = None) -> None:
    """Close ``session``: code of its run still running (a task or thread it started
    that outlives it) passes through from now on. ``token`` (from :func:`activate`)
    gives the opening context its previous state back."""
    session.active = False
    with _OPEN_LOCK:
        _OPEN.pop(id(session), None)
    if token is not None:
        try:
            _tasks.CURRENT.reset(token)
        except ValueError:  # reset from another context (a decorator on a generator)
            _tasks.CURRENT.set(None)


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
        session.emit(event)
        return event


class Session:
    """One record or replay run. Built by :func:`replay.record` / :func:`replay.play`."""

    def __init__(self, mode: RecordMode, *, sink: Callable[[Event], None] | None = None,
                 matcher: Matcher | None = None, t_offset_ns: int = 0) -> None:
        self.mode = mode
        self.t0 = _perf_ns() - t_offset_ns
        """Run start on the perf counter; ``t_offset_ns`` earlier for a fork, whose live
        events continue the recorded prefix's timeline."""
        self._seq = itertools.count()
        self._seq_lock = threading.Lock()
        self._renumbered: dict[int, int] = {}
        self._sink = sink
        self.matcher = matcher
        self.divergences: list[Divergence] = []
        self.events_written = 0
        self.live_events = 0
        """Events run live (record mode: all of them)."""
        self.listeners: list[Callable[[Event], None]] = []
        """Called with every completed event (record) or served event (replay)."""
        self.before_serve: list[Callable[[Event], None]] = []
        """Called with a recorded event just before replay hands it out."""
        self.on_begin: list[Callable[[Pending], None]] = []
        """Called with every event as it is asked for, served or live (breakpoints);
        ``pending.seq`` is its number in this run's log."""
        self.on_stop: list[Callable[[], None]] = []
        """Called when the run stops, before its result is made."""
        self.speed: float | None = None
        """Replay pace: None serves recorded sleeps (and streams) at once; else at the
        recorded pace times this factor (2.0: twice as fast)."""
        self.normalize: Callable[[Value], Value] | None = None
        """Applied to live requests before matching (the redactor: recorded
        requests were redacted, so redacted fields never decide a match)."""
        self.active = False
        """True from :func:`activate` to :func:`deactivate`."""

    @property
    def replaying(self) -> bool:
        """True in strict replay: every answer comes from the recording, nothing runs
        live (so the network is blocked)."""
        return self.matcher is not None and self._sink is None

    @property
    def recording(self) -> bool:
        """True when the session writes a cassette (record, new-events, fork)."""
        return self._sink is not None

    def serving(self) -> bool:
        """Whether the running task is answered from the recording (sleeps are skipped)."""
        if self.matcher is None:
            return False
        if self._sink is None:
            return True
        state = _tasks.state()
        return state is not None and self.matcher.has_queued(state.id)

    def expects(self, task: str) -> bool:
        """Whether the recording still has strict events for ``task`` to ask for."""
        return self.matcher is not None and self.matcher.has_queued(task)

    def begin(self, channel: str, request: Value, *,
              meta: dict[str, Value] | None = None) -> Pending | None:
        """Start an event; None when this call is not part of the run (pass it through).

        When the recording answers, the matched recorded event is on
        ``.recorded``; in strict replay a request the recording cannot answer
        raises :class:`DivergenceError`. Otherwise the call runs live and the
        caller completes the event with ``finish``/``fail``.

        A clock, random or uuid read that a library made for itself (see
        :func:`replay._capture.callsite.find`) is recorded with ``meta["lib"]``
        naming the library's line, and replayed leniently: served from the
        recorded reads of the same task, line and request in their order, run
        live when there are none, never a divergence. Every event of a library's
        background worker (:attr:`TaskState.background`) is lenient the same
        way, matched by call rather than by request.
        """
        state = _tasks.state()
        if state is None or BUSY.get():
            return None
        owner: object = state.session
        if owner is not self:  # a call of another run, through an object of this one
            return None
        infra, site, library = _callsite.find(sys._getframe(1))
        if infra:
            return None
        if state.background:
            library = BACKGROUND
        elif library is None or channel not in LENIENT_CHANNELS:
            library = None
        if library is not None:
            meta = {**meta, "lib": library} if meta else {"lib": library}
        parent = PARENT.get()
        start = _perf_ns() - self.t0
        matcher = self.matcher
        if matcher is not None and parent is None:
            if self.normalize is not None and channel not in GENERATED_CHANNELS:
                request = self.normalize(request)
            if library is not None:
                found: Event | Divergence | None = matcher.lenient(state.id, channel, request,
                                                                  library)
                if found is None and self._sink is None:
                    return None  # strict replay: the library's read runs live, unrecorded
            else:
                found = matcher.match(state.id, channel, request, site)
            if isinstance(found, Divergence):
                self.divergences.append(found)
                raise DivergenceError(found)
            if found is not None:
                return self._serve(found, state, channel, request, site, start, meta)
        elif matcher is not None and self._sink is None:
            return None  # inside a tool running live under strict replay: not matched
        with self._seq_lock:
            seq = next(self._seq)
            self.live_events += 1
        pending = Pending(self, seq, channel, request, state.id, site, start, parent, None,
                          meta)
        for hook in self.on_begin:
            hook(pending)
        return pending

    def _serve(self, found: Event, state: TaskState, channel: str, request: Value,
               site: CallSite | None, start: int, meta: dict[str, Value] | None) -> Pending:
        for serve_hook in self.before_serve:
            serve_hook(found)
        if self._sink is None:
            for listener in self.listeners:
                listener(found)
            served = found
        else:  # written to the new cassette in this run's order, numbered as asked
            served = self._copy(found)
        pending = Pending(self, served.seq, channel, request, state.id, site, start, None,
                          served, meta)
        for hook in self.on_begin:
            hook(pending)
        return pending

    def _copy(self, found: Event) -> Event:
        assert self.matcher is not None
        copies = self.carry(self.matcher.bundle(found))
        return next(c for c, ev in copies if ev is found)

    def carry(self, events: tuple[Event, ...]) -> list[tuple[Event, Event]]:
        """Write recorded ``events`` into this run's cassette, renumbered in order.

        Nested events keep pointing at their (renumbered) parent. Returns
        ``(copy, original)`` pairs.
        """
        out: list[tuple[Event, Event]] = []
        with self._seq_lock:
            for ev in events:
                seq = next(self._seq)
                self._renumbered[ev.seq] = seq
                parent = ev.parent
                if parent is not None:
                    parent = self._renumbered.get(parent, parent)
                out.append((dataclasses.replace(ev, seq=seq, parent=parent), ev))
        for copy, _ in out:
            self.emit(copy)
        return out

    def emit(self, event: Event) -> None:
        """Write a completed event (record mode)."""
        if self._sink is not None:
            self._sink(event)
            self.events_written += 1
        for listener in self.listeners:
            listener(event)

    def call(self, channel: str, request: Any, live: Callable[[], T], *,
             encode: Callable[[T], Any] | None = None,
             decode: Callable[[Any], T] | None = None, leaf: bool = False) -> T:
        """Run ``live`` recorded, or answer from the recording: the common interceptor.

        ``leaf``: ``live`` is a C function that calls nothing patched (``time.time``),
        so the nested-call guard (:data:`BUSY`) is not set around it.
        """
        pending = self.begin(channel, request)
        if pending is None:
            return live()
        recorded = pending.recorded
        if recorded is not None:
            if recorded.error is not None:
                raise _exc.rebuild(recorded.error, recorded.seq)
            value: Any = recorded.response
            return decode(value) if decode is not None else value
        if leaf:
            try:
                result = live()
            except Exception as exc:
                pending.fail(exc)
                raise
            pending.finish(encode(result) if encode is not None else result)  # type: ignore[arg-type]
            return result
        token = BUSY.set(True)
        try:
            result = live()
        except Exception as exc:
            pending.fail(exc)
            raise
        finally:
            BUSY.reset(token)
        pending.finish(encode(result) if encode is not None else result)  # type: ignore[arg-type]
        return result

    def once(self, channel: str, request: Value, live: Callable[[], T], *,
             encode: Callable[[T], Value], decode: Callable[[Value], T]) -> T:
        """A value the run reads once, wherever that happens: a library's hidden state
        at session start or at its import (numpy's global generator).

        Recorded in task ``*`` with ``meta["lib"] = "once"``; replay answers it from
        the recording whenever it is asked, and runs ``live`` when the recording
        has none. Never a divergence.
        """
        matcher = self.matcher
        if matcher is not None:
            found = matcher.lenient(ONCE_TASK, channel, request, ONCE)
            if found is not None:
                if self._sink is not None:
                    self._copy(found)
                return decode(found.response)
            if self._sink is None:
                return live()
        value = live()
        with self._seq_lock:
            seq = next(self._seq)
            self.live_events += 1
        self.emit(Event(seq=seq, channel=channel, request=request, response=encode(value),
                        start_ns=_perf_ns() - self.t0, task=ONCE_TASK, meta={"lib": ONCE}))
        return value
