"""``@replay.recorded``: every call of an agent's entry function becomes a stored run.

    @replay.recorded(keep="failed")          # store=".replay/runs" (or $REPLAY_STORE)
    def answer(question: str) -> str: ...

Each call records a cassette whose header names the function
(``module:qualname``) and holds its arguments, redacted, so ``replay play RUN``
and ``replay.play(RUN).invoke()`` call it again with no command line. Called
while a session is already active in its context (a replay, or inside another
recorded call) it just runs.

Retention (:class:`Retention`) is decided when the call returns: ``all``
keeps every run; ``failed`` keeps runs that raised, answered HTTP 5xx (the
middleware) or called :func:`flag`; ``sampled`` keeps those plus a share
(``sample``) of the rest. A dropped run's ``.partial`` is deleted unfinished:
one unlink, no packing, no fsync, no index write. A kept run is packed,
fsynced and indexed by the step :meth:`Recorder.end` returns, which the
middleware and async entries run in a worker thread, after the answer.

A long-lived service's recorder (``service=True``: the ASGI middleware's)
keeps the per-run path lean: it installs the patches at its first run and
keeps them until :meth:`Recorder.close` (code outside every run passes
through them at near-native cost) instead of installing and removing them
around each run that does not overlap another, and it takes the header's
context fingerprint (environment, packages, git commit) once, not per run. A
decorated function's recorder does both per call, as a script's run does; a
worker that calls it in a loop can keep the patches with
``fn.recorder.hold_patches()`` (and ``fn.recorder.close()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import functools
import inspect
import os
import random
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import FunctionType
from typing import Any, TypeVar, cast

from replay._capture import patch as _patch
from replay._capture.callsite import add_boundary
from replay._capture.session import RecordMode, current
from replay._cassette.errors import ReplayError, SessionError
from replay._cassette.events import Value
from replay._cassette.redact import DEFAULT as DEFAULT_REDACTOR
from replay._cassette.redact import Redactor
from replay._cassette.slots import HeaderTemplate, Slot, SlotPool
from replay._runs.api import Run
from replay._runs.entry import EntryError, function_entry, loading_script, ref_of
from replay._runs.headers import header_base
from replay._runs.store import Caps, RunRow, RunStatus, Store, new_run_id, open_store, store_url
from replay._service.rows import crashed_row, row_of

F = TypeVar("F", bound=Callable[..., Any])


class Keep(enum.Enum):
    """Which finished runs a recorder keeps."""

    ALL = "all"
    """Every run."""
    FAILED = "failed"
    """Runs that raised, answered HTTP 5xx, or were flagged."""
    SAMPLED = "sampled"
    """Failed runs, and a share (``sample``) of the others."""


@dataclass(frozen=True)
class Retention:
    """A recorder's retention policy."""

    keep: Keep = Keep.ALL
    """Which runs are kept."""
    sample: float = 0.1
    """``sampled``: the share of runs that did not fail that is kept (0..1)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample <= 1.0:
            raise ValueError(f"sample must be a share between 0 and 1, not {self.sample}")

    def keeps(self, failed: bool, draw: float) -> bool:
        """Keep a run that ``failed`` (or not), given a uniform ``draw`` in [0, 1)."""
        if failed or self.keep is Keep.ALL:
            return True
        return self.keep is Keep.SAMPLED and draw < self.sample

    @classmethod
    def parse(cls, keep: Keep | str, sample: float | None) -> Retention:
        """From the decorator's ``keep=`` and ``sample=`` (a sample implies sampled)."""
        try:
            mode = Keep(keep)
        except ValueError:
            raise ValueError(f"keep must be one of {', '.join(k.value for k in Keep)}, "
                             f"not {keep!r}") from None
        if sample is not None and mode is Keep.ALL:
            mode = Keep.SAMPLED
        return cls(mode, 0.1 if sample is None else sample)


@dataclass
class _State:
    """The recorded run the current context belongs to (shared by its child tasks)."""

    run_id: str
    flags: list[str] = field(default_factory=list)


_CURRENT: contextvars.ContextVar[_State | None] = contextvars.ContextVar(
    "agent_replay_recorded", default=None)


def flag(reason: str = "flagged") -> bool:
    """Mark the run being recorded here as failed (kept by ``keep="failed"``), with
    ``reason`` as its error. False when no recorded run is active in this context
    (e.g. under replay), where it does nothing."""
    state = _CURRENT.get()
    if state is None:
        return False
    state.flags.append(str(reason))
    return True


def current_run_id() -> str | None:
    """The id of the run being recorded in this context, or None."""
    state = _CURRENT.get()
    return state.run_id if state is not None else None


@dataclass
class Active:
    """A run a :class:`Recorder` has begun."""

    run: Run
    state: _State
    token: contextvars.Token[_State | None]
    start: float
    entry: str
    attrs: dict[str, str]
    draw: float
    journal: Slot | None = None


class Recorder:
    """Begins and ends recorded runs into one store under one retention policy
    (shared by :func:`recorded` and the ASGI middleware)."""

    def __init__(self, store: str | Store | None = None, *, keep: Keep | str = Keep.ALL,
                 sample: float | None = None, tags: Iterable[str] = (),
                 redact: bool | Redactor = True, max_runs: int | None = None,
                 max_bytes: int | None = None, service: bool = False) -> None:
        self.retention = Retention.parse(keep, sample)
        """What is kept."""
        self.tags = tuple(tags)
        """Tags every run gets."""
        self.redact = redact
        self.service = service
        """A long-lived service's recorder: the patches are installed at the first run
        and kept until :meth:`close`; the context fingerprint is taken once."""
        self._store_arg = store
        self._caps = Caps(max_runs, max_bytes)
        self._store: Store | None = None
        self._url: str | None = None
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._base: HeaderTemplate | None = None
        self._slots = SlotPool()
        self._release: weakref.finalize[[], Recorder] | None = None

    def hold_patches(self) -> None:
        """Install the patches for as long as this recorder lives (until :meth:`close`
        or its collection), so a run does not install and remove them each time."""
        if self._release is None or not self._release.alive:
            with self._lock:
                if self._release is None or not self._release.alive:
                    _patch.install()
                    self._release = weakref.finalize(self, _patch.uninstall)

    def close(self) -> None:
        """Give the patches back (the last holder puts the originals back) and delete
        the free journal slots. The recorder stays usable: its next run installs
        them again."""
        release = self._release
        if release is not None:
            release()
        with contextlib.suppress(OSError):
            self._slots.close()

    def _give_slot(self, journal: Slot | None) -> None:
        if journal is not None:
            self._slots.give(journal)

    def _header_base(self) -> HeaderTemplate | None:
        """The header's constant part (argv, Python, platform and the context
        fingerprint), taken at the first run (a service's environment, packages
        and commit do not change while it runs) and encoded once; None when runs
        are not redacted."""
        base = self._base
        if base is None:
            redact = self.redact
            redactor = DEFAULT_REDACTOR if redact is True else (redact or None)
            if redactor is None:
                return None
            base = self._base = HeaderTemplate(header_base(redactor), redactor)
        return base

    @property
    def store(self) -> Store:
        """The store: the one given, else ``$REPLAY_STORE`` / ``.replay/runs`` as they are
        now. Opened on first use, when crashed writers' leftovers are recovered."""
        arg = self._store_arg
        url = arg.url if isinstance(arg, Store) else store_url(arg)
        store = self._store
        if store is None or self._url != url:
            with self._lock:
                store = self._store
                if store is None or self._url != url:
                    store = arg if isinstance(arg, Store) else open_store(url, caps=self._caps)
                    try:
                        store.recover(crashed_row)
                    except (OSError, ReplayError) as exc:
                        warnings.warn(f"agent-replay: could not recover crashed runs in "
                                      f"{store.url}: {exc}", RuntimeWarning, stacklevel=2)
                    self._store, self._url = store, url
        return store

    def begin(self, entry: str, entry_doc: dict[str, Value],
              attrs: Mapping[str, str] | None = None) -> Active | None:
        """Start recording a run of ``entry``; None when a session is already active
        in this context (the code then just runs). EntryError when a script being
        imported to replay one of its runs calls it at its top level: that would
        run the agent live."""
        script = loading_script()
        if script is not None:
            raise EntryError(
                f"{script} calls its entry point {entry} when it is imported, so "
                f"replaying a run of it would run the agent live; put that call "
                f'under `if __name__ == "__main__":`')
        if current() is not None:
            return None
        store = self.store
        if self.service:
            self.hold_patches()
        draw = self._rng.random()
        start = time.time()
        run_id = new_run_id(start)
        own = dict(attrs or {})
        info: dict[str, Value] = {"id": run_id, "entry": entry, "start": start,
                                  "tags": list(self.tags), "attrs": own}  # type: ignore[dict-item]
        path = store.new_run(run_id)
        journal = self._slots.take(os.path.dirname(path)) if self.service else None
        run = Run(path, RecordMode.RECORD, redact=self.redact,
                  metadata={"entry": entry_doc, "run": info},
                  base=self._header_base() if self.service else None, journal=journal,
                  checked=True)
        try:
            run.start()
        except BaseException as exc:
            if journal is not None:  # what the writer may have put there is no run
                journal.empty()
                self._give_slot(journal)
            if isinstance(exc, SessionError):  # another session holds this context:
                return None                    # the code runs unrecorded
            raise
        state = _State(run_id)
        token = _CURRENT.set(state)
        return Active(run, state, token, start, entry, own, draw, journal)

    def end(self, active: Active, exc: BaseException | None = None, *,
            http_status: int | None = None, entry: str | None = None,
            attrs: Mapping[str, str] | None = None) -> Callable[[], RunRow | None] | None:
        """Stop the run. Dropped by retention: its file is deleted and None is returned.
        Kept: returns the step that packs its cassette (with its fsync), indexes it
        and puts it in the store (call it, or run it in an executor from async
        code: none of that work is then on the caller's path)."""
        state = active.state
        failed = exc is not None or (http_status or 0) >= 500 or bool(state.flags)
        keep = self.retention.keeps(failed, active.draw)
        run = active.run
        run.discard = not keep
        run.finish_later = keep
        try:
            run.stop(exc)
        finally:
            _CURRENT.reset(active.token)
        if not keep:
            self._give_slot(active.journal)  # emptied by the writer's drop
            return None
        duration = max(0.0, time.time() - active.start)
        error = _error_text(exc, http_status, state.flags, run)
        all_attrs = {**active.attrs, **(attrs or {})}
        if http_status is not None:
            all_attrs["http_status"] = str(http_status)
        if state.flags:
            all_attrs["flag"] = "; ".join(state.flags)
        path = run.path
        status = RunStatus.FAILED if failed else RunStatus.OK

        def commit() -> RunRow | None:
            try:
                run.finish_output()
                # packed: the slot is empty again (a failed packing keeps the complete
                # journal in it, out of the pool, for the next start's recovery)
                self._give_slot(active.journal)
                red = run.redactor  # the index is on disk too: no key in it
                tags, attrs_, name = self.tags, all_attrs, entry or active.entry
                if red is not None:
                    tags = tuple(red.text(t) for t in tags)
                    attrs_ = {k: red.text(v) for k, v in all_attrs.items()}
                    name = red.text(name)
                row = row_of(path, run_id=state.run_id, entry=name, start=active.start,
                             duration=duration, status=status, error=error, tags=tags,
                             attrs=attrs_)
                self.store.put(path, row)
            except (OSError, ReplayError) as err:
                warnings.warn(f"agent-replay: run {state.run_id} was recorded to {path} "
                              f"but could not be stored: {err}", RuntimeWarning, stacklevel=2)
                return None
            return row
        return commit


def _error_text(exc: BaseException | None, http_status: int | None, flags: list[str],
                run: Run) -> str | None:
    if exc is not None:
        text = f"{type(exc).__name__}: {exc}"
    elif http_status is not None and http_status >= 500:
        text = f"HTTP {http_status}"
    elif flags:
        text = "flagged: " + "; ".join(flags)
    else:
        return None
    if run.redactor is not None:
        text = run.redactor.text(text)
    return text if len(text) <= 500 else text[:497] + "..."


def recorded(store: str | Store | None = None, *, keep: Keep | str = Keep.ALL,
             sample: float | None = None, tags: Iterable[str] = (),
             redact: bool | Redactor = True, max_runs: int | None = None,
             max_bytes: int | None = None) -> Callable[[F], F]:
    """Record every call of the decorated function (sync or async) as a run in
    ``store`` (default ``$REPLAY_STORE`` or ``.replay/runs``; ``s3://`` urls too).

    ``keep``: ``all``, ``failed`` or ``sampled`` (with ``sample``, the share of
    runs that did not fail kept; giving ``sample`` alone means sampled).
    ``tags`` label every run; ``max_runs`` / ``max_bytes`` cap the store (the
    oldest runs are evicted). Arguments must be JSON-like for the run to be
    re-invoked (others are recorded, the run marked not re-invocable).
    """
    recorder = Recorder(store, keep=keep, sample=sample, tags=tags, redact=redact,
                        max_runs=max_runs, max_bytes=max_bytes)

    def decorate(func: F) -> F:
        entry = ref_of(func)[0]
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def arun(*args: Any, **kwargs: Any) -> Any:
                active = recorder.begin(entry, function_entry(func, args, kwargs))
                if active is None:
                    return await func(*args, **kwargs)
                try:
                    value = await func(*args, **kwargs)
                except BaseException as exc:
                    commit = recorder.end(active, exc)
                    if commit is not None:
                        await asyncio.get_running_loop().run_in_executor(None, commit)
                    raise
                commit = recorder.end(active)
                if commit is not None:
                    await asyncio.get_running_loop().run_in_executor(None, commit)
                return value
            # its callers differ on replay (entry.call): nothing past it is the run's
            add_boundary(cast(FunctionType, arun).__code__)
            arun.recorder = recorder  # type: ignore[attr-defined]
            return arun  # type: ignore[return-value]

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            active = recorder.begin(entry, function_entry(func, args, kwargs))
            if active is None:
                return func(*args, **kwargs)
            try:
                value = func(*args, **kwargs)
            except BaseException as exc:
                commit = recorder.end(active, exc)
                if commit is not None:
                    commit()
                raise
            commit = recorder.end(active)
            if commit is not None:
                commit()
            return value
        add_boundary(cast(FunctionType, run).__code__)
        run.recorder = recorder  # type: ignore[attr-defined]
        return run  # type: ignore[return-value]
    return decorate
