"""Breakpoints: stop the real agent when it asks for event N, in its own frame.

``Run.options["break_at"]`` (``replay play FILE --break N``, or
``replay.play(path, break_at=N)``) names event numbers. When the run asks for
one of them — before the answer is handed out — the debugger opens in the
first frame of the user's code on the stack: the line that made the call,
not agent-replay's or an SDK's internals.

Which debugger follows ``sys.breakpointhook`` semantics: a hook installed in
the process (an IDE's) is called; otherwise ``PYTHONBREAKPOINT`` is read at
that moment (``0`` disables, empty means pdb, ``module.callable`` is imported
and called). Hooks that accept a ``frame`` argument (pdb here, ipdb, test
hooks) get the user's frame, and an ``event`` argument the recorded event
(None when it runs live); others are called bare and stop in ours (``up``
reaches the user's). While the prompt is open, calls the user evaluates are
not part of the run: they run for real and take nothing from the recording.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import warnings
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from replay._capture import callsite as _callsite
from replay._capture.matcher import is_matchable
from replay._capture.session import BUSY, SESSION_HOOKS, Pending, RunSettings, Session
from replay._cassette import read_cassette
from replay._cassette.events import Event


class Breakpoints:
    """The event numbers still to stop at in one run."""

    def __init__(self, points: Iterable[int]) -> None:
        self.left = set(points)
        self.hit: list[int] = []
        """Event numbers stopped at, in order."""

    def on_begin(self, pending: Pending) -> None:
        """Session hook: stop if ``pending`` is a breakpoint."""
        if pending.seq not in self.left:
            return
        self.left.discard(pending.seq)
        self.hit.append(pending.seq)
        frame = _callsite.user_frame(sys._getframe(1))
        if frame is not None:
            open_debugger(frame, header(pending), pending.recorded)

    def on_stop(self) -> None:
        """Session hook: say which breakpoints the run never reached."""
        if self.left:
            missed = ", ".join(f"#{n}" for n in sorted(self.left))
            warnings.warn(f"the run never asked for event(s) {missed}: breakpoint not reached",
                          RuntimeWarning, stacklevel=2)


def header(pending: Pending) -> str:
    """The line printed when a breakpoint stops the run."""
    how = "served from the recording" if pending.recorded is not None else "about to run live"
    return (f"[agent-replay] breakpoint: event #{pending.seq} {pending.channel} "
            f"(task {pending.task}), {how}; the call below asked for it. "
            f"'c' continues the run.")


def open_debugger(frame: FrameType, text: str, event: Event | None = None) -> None:
    """Open the debugger ``sys.breakpointhook`` would open, in ``frame``."""
    hook: Callable[..., Any] | None = sys.breakpointhook
    if hook is sys.__breakpointhook__:
        target = os.environ.get("PYTHONBREAKPOINT", "")
        if target == "0":
            return
        hook = None if target in ("", "pdb.set_trace") else _import(target)
        if hook is None and target not in ("", "pdb.set_trace"):
            return
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
    token = BUSY.set(True)  # what the user evaluates at the prompt is not the run's
    try:
        if hook is None:
            _pdb(frame)
        else:
            hook(**_kwargs(hook, frame, event))
    finally:
        BUSY.reset(token)


def _import(target: str) -> Callable[..., Any] | None:
    modname, _, name = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(modname or "builtins"), name)
    except (ImportError, AttributeError):
        warnings.warn(f'Ignoring unimportable $PYTHONBREAKPOINT: "{target}"', RuntimeWarning,
                      stacklevel=3)
        return None
    return obj if callable(obj) else None


def _kwargs(hook: Callable[..., Any], frame: FrameType, event: Event | None) -> dict[str, Any]:
    try:
        params = inspect.signature(hook).parameters
    except (TypeError, ValueError):
        return {}
    anykw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    out: dict[str, Any] = {}
    if "frame" in params or anykw:
        out["frame"] = frame
    if "event" in params:
        out["event"] = event
    return out


def _pdb(frame: FrameType) -> None:
    """pdb's prompt at ``frame`` now; its stepping commands then trace from there."""
    import pdb
    debugger = pdb.Pdb()
    debugger.reset()
    f: FrameType | None = frame
    while f is not None:
        debugger.botframe = f
        f = f.f_back
    debugger.interaction(frame, None)
    if debugger.stoplineno == -1 and not debugger.breaks and not debugger.quitting:
        return  # 'continue' with no breakpoints set: no tracing needed
    f = frame
    while f is not None:
        f.f_trace = debugger.trace_dispatch
        f = f.f_back
    sys.settrace(debugger.trace_dispatch)


def _on_session(session: Session, run: RunSettings) -> None:
    points = run.options.get("break_at")
    if not points:
        return
    bp = Breakpoints(int(n) for n in ([points] if isinstance(points, int) else points))
    session.on_begin.append(bp.on_begin)
    session.on_stop.append(bp.on_stop)


def check_points(path: str, points: Iterable[int]) -> str | None:
    """Why a breakpoint can never be reached under replay of ``path``, or None."""
    events = {ev.seq: ev for ev in read_cassette(path, strict=False).events}
    last = max(events, default=-1)
    for n in points:
        ev = events.get(n)
        if ev is None:
            return f"--break {n}: {path} has no event #{n} (its events are #0..#{last})"
        if is_matchable(ev):
            continue
        if ev.parent is not None:
            return (f"--break {n}: event #{n} happened inside #{ev.parent}, which replay "
                    f"serves whole without running it; break at #{ev.parent}")
        after = next((e.seq for e in sorted(events.values(), key=lambda e: e.seq)
                      if e.seq > n and e.task == ev.task and is_matchable(e)), None)
        instead = f"; break at #{after}, the next call of that task" if after is not None else ""
        return f"--break {n}: event #{n} is a {ev.channel}, which replay skips{instead}"
    return None


if _on_session not in SESSION_HOOKS:
    SESSION_HOOKS.append(_on_session)
