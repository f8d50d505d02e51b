"""``replay.record`` and ``replay.play``: a run as a context manager or decorator.

    with replay.record("run.replay"):
        agent()                      # live; every input recorded

    with replay.play("run.replay") as run:
        agent()                      # the same run again, byte for byte
    run.result.unconsumed            # what the recording had and nobody asked

Both work as ``with`` / ``async with`` blocks and as decorators of sync and
async functions (each call is a fresh run). ``replay.run(path, mode)`` takes
any :class:`RecordMode`; ``new-events`` (and ``replay.fork``, built on it)
answers what the recording can, runs the rest live and writes the run as it
happened to a new cassette.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, TypeVar

from replay._capture import patch as _patch
from replay._capture import points as _points  # noqa: F401 - registers every capture point
from replay._capture.matcher import Matcher, OnMiss
from replay._capture.pending import finish_open
from replay._capture.session import (
    SESSION_HOOKS,
    RecordMode,
    Session,
    activate,
    deactivate,
    require_no_session,
)
from replay._cassette import Cassette, CassetteWriter, Header, read_cassette, read_header
from replay._cassette.divergence import Divergence, Grade
from replay._cassette.errors import DivergenceError, SessionError
from replay._cassette.events import Event, Value
from replay._cassette.redact import DEFAULT as DEFAULT_REDACTOR
from replay._cassette.redact import Redactor
from replay._cassette.redacted import header_for
from replay._cassette.slots import HeaderTemplate, Slot
from replay._runs import breakpoint as _breakpoint  # noqa: F401 - registers the break_at hook
from replay._runs import entry as _entry
from replay._runs import extensions as _extensions
from replay._runs.headers import CAPTURE_VERSION, HEADER_META, created_now
from replay._runs.lifespan import serving
from replay._runs.preflight import cassette_problem, output_problem, require
from replay._runs.store import resolve

F = TypeVar("F", bound=Callable[..., Any])

def _legacy_reads(cassette: Cassette) -> bool:
    return cassette.header.meta.get("capture") is None


class Unused(enum.Enum):
    """What to do with recorded events the replayed run never asked for."""

    IGNORE = "ignore"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class ReplayResult:
    """What a run did with its cassette."""

    path: str
    """The cassette."""
    mode: RecordMode
    """The mode the run actually used (AUTO resolved)."""
    recorded: int
    """Events written (record / new-events)."""
    consumed: int
    """Recorded events served (replay)."""
    unconsumed: tuple[Event, ...]
    """Recorded events never asked for."""
    divergences: tuple[Divergence, ...]
    """Every divergence met, in order."""
    reordered: int = 0
    """Recorded events served in another interleaving of tasks than recorded
    (accepted: each task got its own events in its own order)."""
    live: int = 0
    """Events run live (record: all; new-events / fork: those the recording lacked)."""
    output: str | None = None
    """The cassette written (record, new-events, fork); None for a replay."""
    elapsed_ns: int = 0
    """Wall time this run took, from its start to its end."""
    recorded_ns: int = 0
    """How long the recorded run took (the end of its last event); 0 when recording."""

    @property
    def ok(self) -> bool:
        """No divergence and nothing left unconsumed."""
        return not self.divergences and not self.unconsumed

    @property
    def grade(self) -> Grade | None:
        """The grade of the first divergence; None when there was none."""
        return self.divergences[0].grade if self.divergences else None

    def report(self) -> str:
        """What the run did with its cassette, then every divergence's report."""
        head = (f"{self.mode.value} {self.path}: served {self.consumed}, "
                f"{len(self.unconsumed)} unused, {len(self.divergences)} divergence(s)")
        if self.reordered:
            head += f", {self.reordered} served in another task interleaving (accepted)"
        if self.output is not None:
            head += f"; wrote {self.recorded} events ({self.live} live) to {self.output}"
        return "\n\n".join([head, *(d.report() for d in self.divergences)])


class Run:
    """A record or replay run; use :func:`record`, :func:`play`, :func:`run` or
    :func:`replay.fork` to make one.

    ``output`` (new-events): where the new cassette goes, default ``path``.
    ``at`` (new-events): only events before it are replayed, the rest run live
    (a fork). ``live`` (with ``at``): a request that does not match before
    ``at`` runs live too, instead of diverging. ``context`` (record): the
    header's constant part taken once (:func:`header_base`, or a
    ``HeaderTemplate`` of it: the run's header is it with this run's start time
    and ``metadata``); ``journal`` (record): a journal slot reused run after
    run (``CassetteWriter``'s); ``checked``
    (record): the caller made ``path`` new in a folder of its own (a store's
    spool), so the output checks run only should the journal fail to open.
    """

    def __init__(self, path: str | os.PathLike[str], mode: RecordMode | str, *,
                 redact: bool | Redactor = True, unused: Unused | str = Unused.WARN,
                 metadata: dict[str, Value] | None = None,
                 allow_damaged: bool = False, output: str | os.PathLike[str] | None = None,
                 at: int | None = None, live: bool = False,
                 base: Header | HeaderTemplate | None = None, journal: Slot | None = None,
                 checked: bool = False) -> None:
        self.path = os.fspath(path)
        self.mode = RecordMode.parse(mode)
        if (at is not None or live) and self.mode is not RecordMode.NEW_EVENTS:
            raise ValueError("at= and live= are for new-events runs (forks)")
        if at is not None and at < 0:
            raise ValueError(f"at= must be an event number >= 0, not {at}")
        self.output = os.fspath(output) if output is not None else self.path
        self.at = at
        self.live = live
        self.redactor: Redactor | None = (
            DEFAULT_REDACTOR if redact is True else (redact or None))
        self.unused = Unused(unused)
        self.metadata = dict(metadata or {})
        self.allow_damaged = allow_damaged
        self.session: Session | None = None
        self.result: ReplayResult | None = None
        self.options: dict[str, Any] = {}
        """Extra settings read by session hooks (break_at, speed, allow_hosts...)."""
        self.discard = False
        """Set before ``stop`` to drop the recording: its ``.partial`` is deleted
        instead of finished (retention: a dropped run costs one unlink)."""
        self.finish_later = False
        """Set before ``stop`` to leave the cassette's packing (and its fsync) to
        :meth:`finish_output`, e.g. in a worker thread off a request's path. ``stop``
        writes the journal's end record: until it is packed, the run is complete
        at ``output + ".partial"``."""
        self._base = base if self.redactor is not None else None
        self._journal = journal
        self._checked = checked
        self._writer: CassetteWriter | None = None
        self._started = 0
        self._recorded_ns = 0
        self._token: Any = None

    def _config(self) -> dict[str, Any]:
        return {"path": self.path, "mode": self.mode,
                "redact": self.redactor if self.redactor is not None else False,
                "unused": self.unused, "metadata": self.metadata,
                "allow_damaged": self.allow_damaged, "output": self.output, "at": self.at,
                "live": self.live}

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> Run:
        """Begin the run (what ``__enter__`` does)."""
        if self.session is not None:
            raise SessionError("this run has already started; make a new one")
        require_no_session()  # before a cassette is read or a new one opened
        _extensions.load()  # the fingerprint in the header, session hooks of layers above
        mode = self.mode
        exists = mode in (RecordMode.AUTO, RecordMode.NEW_EVENTS) and os.path.exists(self.path)
        if mode is RecordMode.AUTO:
            mode = RecordMode.REPLAY if exists else RecordMode.RECORD
        elif mode is RecordMode.NEW_EVENTS and not exists and self.at is None:
            mode = RecordMode.RECORD  # nothing recorded yet: every event is new
        self.mode = mode
        checked = self._checked and mode is RecordMode.RECORD
        if not checked:
            self._preflight(mode)
        if mode is RecordMode.REPLAY:
            session = self._replay_session()
        elif mode is RecordMode.RECORD:
            try:
                self._writer = CassetteWriter(self.output, self._header({}),
                                              transform=self.redactor, journal=self._journal)
            except OSError:
                if checked:
                    self._preflight(mode)  # the documented reason, when it is one of them
                raise
            session = Session(mode, sink=self._writer.write)
        else:
            session = self._mixed_session()
        speed = self.options.get("speed")
        session.speed = float(speed) if speed else None
        for hook in SESSION_HOOKS:  # the HTTP hook validates ``speed``
            hook(session, self)
        self._started = time.perf_counter_ns()
        self._token = activate(session)
        self.session = session
        try:
            _patch.install()
        except BaseException:
            deactivate(session, self._token)
            self._token = None
            raise
        return self

    def _header(self, base: dict[str, Value]) -> Header | bytes:
        """The new cassette's header, argv and metadata redacted like the events."""
        head, redactor = self._base, self.redactor
        if isinstance(head, HeaderTemplate) and not base:
            return head.encode(created_now(), self.metadata)  # its redactor's (the Run's)
        if isinstance(head, HeaderTemplate):
            head = head.base
        if head is None or redactor is None or base:
            return header_for(Header.new(meta=self._meta(base)), self.redactor)
        # The constant part (taken once, already redacted: ``header_base``) and this
        # run's own metadata are redacted apart: redaction works key by key.
        return Header(redactor.text(created_now()), head.argv, head.python, head.platform,
                      {**head.meta, **redactor.meta(self.metadata)})

    def _meta(self, base: dict[str, Value]) -> dict[str, Value]:
        meta = dict(base)
        meta["capture"] = CAPTURE_VERSION
        for provider in HEADER_META:
            meta.update(provider())
        meta.update(self.metadata)
        return meta

    def _preflight(self, mode: RecordMode) -> None:
        """Refuse a bad path before anything runs: a missing or unreadable cassette
        (never a live run instead), or an output that could not be written at the end."""
        if mode is not RecordMode.RECORD:
            problem = cassette_problem(self.path, header=False)
            if problem is not None and problem.kind == "missing" and problem.partial is None:
                problem = replace(problem, message=f"{problem.message}; record it first, e.g. "
                                  f"replay record -o {self.path} -- python your_agent.py")
            require(problem)
        if mode is not RecordMode.REPLAY:
            require(output_problem(self.output))

    def _source(self) -> Cassette:
        cassette = read_cassette(self.path, strict=not self.allow_damaged)
        self._recorded_ns = max((e.start_ns + e.duration_ns for e in cassette.events),
                                default=0)
        return cassette

    def _replay_session(self) -> Session:
        cassette = self._source()
        session = Session(RecordMode.REPLAY, matcher=Matcher(
            cassette.events, legacy_reads=_legacy_reads(cassette)))
        if self.redactor is not None:
            session.normalize = self.redactor.value
        return session

    def _mixed_session(self) -> Session:
        """new-events: answer what the recording can, run the rest live, write it all."""
        cassette = self._source()
        events: tuple[Event, ...] = tuple(cassette.events)
        offset = 0
        base: dict[str, Value] = dict(cassette.header.meta)
        if self.at is not None:
            if os.path.abspath(self.output) == os.path.abspath(self.path):
                raise SessionError("a fork writes a new cassette: give an output other "
                                   f"than its parent {self.path}")
            events = prefix(events, self.at)
            offset = max((e.start_ns + e.duration_ns for e in events), default=0)
            base = {}
        on_miss = OnMiss.LIVE if self.at is None or self.live else OnMiss.LIVE_WHEN_DONE
        self._writer = CassetteWriter(self.output, self._header(base), transform=self.redactor)
        session = Session(RecordMode.NEW_EVENTS, sink=self._writer.write,
                          matcher=Matcher(events, on_miss=on_miss,
                                          legacy_reads=_legacy_reads(cassette)),
                          t_offset_ns=offset)
        if self.redactor is not None:
            session.normalize = self.redactor.value
        return session

    def stop(self, exc: BaseException | None = None) -> ReplayResult:
        """End the run (what ``__exit__`` does) and return its result."""
        session = self.session
        if session is None:
            raise SessionError("this run was never started")
        if not session.active:
            raise SessionError("this run has already stopped")
        finish_open(session)  # a stream still open is part of the run as it stood
        deactivate(session, self._token)
        self._token = None
        _patch.uninstall()
        for hook in session.on_stop:
            hook()
        matcher = session.matcher
        if matcher is not None:
            session.divergences.extend(matcher.settle())
        if self._writer is not None:
            if self.discard:  # retention dropped the run: its journal deleted or emptied
                self._writer.drop()
            elif self.finish_later:
                self._writer.end()  # complete on disk now; packed by finish_output
            else:
                # The output is the run as it happened, so it replays strictly: recorded
                # events this run did not ask for (a path an edit or the live world
                # turned away from) are left out; ``unconsumed`` still lists them.
                self._writer.close()
        unconsumed = matcher.unconsumed() if matcher is not None else ()
        divergences = list(session.divergences)
        # After a divergence the run stopped early, so recorded events are left
        # over as a consequence: they stay in ``unconsumed`` but are not reported
        # as a second divergence. A run that went live took another path on
        # purpose: what it left of the recording is not a divergence either.
        went_live = session.recording and session.live_events > 0
        report_unused = (bool(unconsumed) and self.unused is not Unused.IGNORE
                         and not session.divergences and not went_live)
        if report_unused:
            task = unconsumed[0].task
            divergences.append(Divergence(Grade.UNUSED, unconsumed[0].channel, task,
                                          unconsumed[0], unused=unconsumed))
        self.result = ReplayResult(
            path=self.path, mode=self.mode, recorded=session.events_written,
            consumed=matcher.consumed if matcher is not None else 0,
            unconsumed=unconsumed, divergences=tuple(divergences),
            reordered=matcher.reordered if matcher is not None else 0,
            live=session.live_events if session.recording else 0,
            output=self.output if session.recording else None,
            elapsed_ns=time.perf_counter_ns() - self._started, recorded_ns=self._recorded_ns)
        if exc is None:
            if session.divergences:
                raise DivergenceError(session.divergences[0])
            if report_unused and self.unused is Unused.FAIL:
                raise DivergenceError(divergences[-1])
        if report_unused and self.unused is Unused.WARN:
            warnings.warn(divergences[-1].report(), UnconsumedWarning, stacklevel=3)
        return self.result

    def finish_output(self) -> None:
        """Pack the cassette of a stopped run left with ``finish_later`` and rename it
        into place (fsynced); nothing to do otherwise. Safe from any thread."""
        if self._writer is not None and self.session is not None and not self.session.active:
            self._writer.close()

    def invoke(self) -> Any:
        """Run the cassette's recorded entry point (``@replay.recorded`` function or
        ASGI request) inside this run and return what it returns (an ASGI request:
        its :class:`~replay._runs.entry.Response`); its exception propagates."""
        entry = self._entry()
        if entry.is_async:  # the run starts inside the new loop, as it was recorded
            _entry.no_running_loop()
            return asyncio.run(self.ainvoke())
        target = _entry.load(entry)  # imports run outside the session, as when recorded
        with self:
            return _entry.call(entry, target)

    async def ainvoke(self) -> Any:
        """:meth:`invoke` from async code."""
        entry = self._entry()
        target = _entry.load(entry)
        # an ASGI app's lifespan starts before the run, as the server started it
        async with serving(entry.kind, target) as app_state, self:
            return await _entry.acall(entry, target, app_state)

    def _entry(self) -> _entry.Entry:
        require(cassette_problem(self.path))
        return _entry.entry_of(read_header(self.path).meta, self.path)

    def __enter__(self) -> Run:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(exc)

    async def __aenter__(self) -> Run:
        return self.start()

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.stop(exc)

    def __call__(self, func: F) -> F:
        """Use as a decorator: every call of ``func`` is a fresh run."""
        config = self._config()
        options = dict(self.options)

        def fresh() -> Run:
            run = Run(**config)
            run.options.update(options)
            return run

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                async with fresh():
                    return await func(*args, **kwargs)
            return awrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with fresh():
                return func(*args, **kwargs)
        return wrapper  # type: ignore[return-value]


class UnconsumedWarning(UserWarning):
    """A replay ended with recorded events that were never asked for."""


def record(path: str | os.PathLike[str], *, redact: bool | Redactor = True,
           metadata: dict[str, Value] | None = None) -> Run:
    """Record a run into the cassette at ``path`` (written atomically on exit).

    ``redact`` (default on) removes keys and tokens before anything is written;
    pass a :class:`Redactor` to add patterns, or ``False`` to keep everything.
    """
    return Run(path, RecordMode.RECORD, redact=redact, metadata=metadata)


def play(path: str | os.PathLike[str], *, unused: Unused | str = Unused.WARN,
         redact: bool | Redactor = True, allow_damaged: bool = False,
         speed: float | None = None,
         match_on: Sequence[str] | Callable[[Value, Value], bool] | None = None,
         allow_hosts: Sequence[str] = (), break_at: int | Sequence[int] = ()) -> Run:
    """Replay the cassette at ``path`` strictly: no network, every input from the file.

    A request the recording cannot answer raises :class:`DivergenceError`;
    recorded events never asked for are reported per ``unused``. HTTP options
    (docs/http.md): ``speed`` replays streams and sleeps at the recorded pace
    times this factor (default: at once; clock reads are the recorded ones either
    way); ``match_on`` names the request fields that must
    match (default ``("method", "url", "body")``) or is ``fn(recorded, actual)``;
    ``allow_hosts`` may still be connected to. ``break_at`` opens the debugger
    when the run asks for those event numbers (docs/breakpoints.md).

    ``path`` may name a stored run (``last``, a run id; docs/production.md):
    ``replay.play("last").invoke()`` calls its recorded entry point again.
    """
    run = Run(resolve(os.fspath(path)), RecordMode.REPLAY, unused=unused, redact=redact,
              allow_damaged=allow_damaged)
    points = [break_at] if isinstance(break_at, int) else list(break_at)
    for key, value in (("speed", speed), ("match_on", match_on), ("allow_hosts", allow_hosts),
                       ("break_at", points)):
        if value:
            run.options[key] = value
    return run


def run(path: str | os.PathLike[str], mode: RecordMode | str = RecordMode.AUTO,
        **kwargs: Any) -> Run:
    """A run in any :class:`RecordMode` (``auto``: replay if the cassette exists).

    ``new-events`` replays what matches and runs the rest live, then rewrites the
    cassette (or writes ``output=``) with the run as it happened plus the
    recorded events it did not use.
    """
    return Run(path, mode, **kwargs)


def prefix(events: tuple[Event, ...], at: int) -> tuple[Event, ...]:
    """The events before ``at``, and the nested events of those (served whole)."""
    kept: set[int] = set()
    for ev in sorted(events, key=lambda e: e.seq):
        if ev.seq < at or (ev.parent is not None and ev.parent in kept):
            kept.add(ev.seq)
    return tuple(ev for ev in events if ev.seq in kept)
