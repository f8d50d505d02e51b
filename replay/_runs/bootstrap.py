"""The child side of ``replay record/play -- COMMAND``: one run per process.

The parent CLI passes a JSON spec in ``AGENT_REPLAY_BOOT``; this module starts
the run before the program's first line and stops it at interpreter exit
(``atexit``: after a normal end, ``sys.exit`` or an uncaught exception; SIGTERM
is turned into ``SystemExit`` so it closes the cassette too). The outcome is
written as JSON to the parent's result file.

When the run cannot start, :func:`start` raises (after removing any empty
``.partial`` it opened); ``sitecustomize`` then ends the process before the
program's first line, so a program is never run unrecorded by mistake.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any

from replay._cassette.errors import DivergenceError, ReplayError, SessionError
from replay._runs.api import Run
from replay._runs.preflight import require, run_problem


def start(spec_text: str) -> None:
    """Start the run described by the parent's spec."""
    try:
        spec: dict[str, Any] = json.loads(spec_text)
        if not isinstance(spec, dict) or not {"cassette", "mode"} <= spec.keys():
            raise ValueError("a JSON object with 'cassette' and 'mode' is expected")
    except ValueError as exc:
        raise SessionError(f"AGENT_REPLAY_BOOT is not a run spec: {exc}") from None
    require(run_problem(spec["mode"], spec["cassette"], output=spec.get("output"),
                        at=spec.get("at")))
    run = Run(spec["cassette"], spec["mode"], redact=spec.get("redact", True),
              unused=spec.get("unused", "warn"), metadata=spec.get("metadata") or None,
              allow_damaged=spec.get("allow_damaged", False), output=spec.get("output"),
              at=spec.get("at"), live=spec.get("live", False))
    run.options.update(spec.get("options") or {})
    try:
        run.start()
    except BaseException:
        _discard(run)
        raise
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)
    sys.excepthook = report_last(sys.excepthook)
    atexit.register(_finish, run, spec.get("result"))


def report_last(previous: Callable[..., Any]) -> Callable[..., Any]:
    """An ``excepthook`` that leaves the divergence report to the run's end, where it
    is printed once, after everything else.

    When the divergence is what killed the program, its traceback only repeats
    the report (the report names the line that asked): nothing is printed here.
    When another exception killed it (an SDK wrapping the divergence, or a
    failure it caused), the traceback is printed with each divergence in it
    shortened to its first line.
    """
    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if isinstance(exc, DivergenceError):
            return
        for link in chain(exc):
            if isinstance(link, DivergenceError):
                first = str(link).split("\n", 1)[0]
                link.args = (f"{first} (the report is printed at the end)",)
        previous(kind, exc, tb)
    return hook


def chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during (each once)."""
    out: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and all(link is not seen for seen in out):
        out.append(link)
        link = link.__cause__ or link.__context__
    return out


def _discard(run: Run) -> None:
    """Remove the ``.partial`` a run that failed to start may have opened (no events)."""
    writer = getattr(run, "_writer", None)
    if writer is None:
        return
    with contextlib.suppress(Exception):
        writer.abort()
    with contextlib.suppress(OSError):
        os.unlink(writer.partial_path)


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _finish(run: Run, result_path: str | None) -> None:
    error: str | None = None
    try:
        run.stop(None)
    except DivergenceError as exc:
        error = str(exc)
    except ReplayError as exc:  # pragma: no cover - reported to the parent
        error = str(exc)
    write_result(run, result_path, error)


def write_result(run: Run, result_path: str | None, error: str | None) -> None:
    """Write a finished run's outcome as JSON for the parent (``report_child`` reads it)."""
    res = run.result
    out: dict[str, Any] = {"mode": run.mode.value, "error": error}
    if res is not None:
        out.update(recorded=res.recorded, consumed=res.consumed,
                   unconsumed=len(res.unconsumed), live=res.live, reordered=res.reordered,
                   output=res.output, grades=[d.grade.value for d in res.divergences],
                   elapsed_ns=res.elapsed_ns, recorded_ns=res.recorded_ns,
                   divergences=[d.report() for d in res.divergences])
    if result_path:
        with open(result_path, "w", encoding="utf-8") as f:
            json.dump(out, f)
    elif error:
        sys.stderr.write(error + "\n")
