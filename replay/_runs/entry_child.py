"""The child process of ``replay play RUN`` with no program: the run's entry point
called again under a replay (see :mod:`replay._runs.entry`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

from replay._cassette import read_header
from replay._cassette.errors import DivergenceError, ReplayError
from replay._cassette.jsonable import jsonable
from replay._cassette.redact import DEFAULT
from replay._runs.api import Run
from replay._runs.bootstrap import chain, report_last, write_result
from replay._runs.entry import EntryError, Response, acall, call, entry_of, load
from replay._runs.lifespan import serving

CHILD_CODE = "from replay._runs.entry_child import main; main()"
"""``python -c`` code of the child ``replay play RUN`` starts: ``main``."""

NOT_CALLED = 70
"""The exit code when the run could not start and the entry was not called (the
value of ``child.BOOT_FAILED``, which imports this module)."""


def main(argv: list[str] | None = None) -> None:
    """Child side of ``replay play RUN`` with no program: load the entry point (its
    imports run before the session, as they did when it was recorded), replay the
    call under the run the JSON spec in ``argv[0]`` describes, print what it
    returned as JSON (redacted), and write the outcome to the spec's result file.
    An exception the entry raises ends the process as it would have (exit 1)."""
    spec = json.loads((sys.argv[1:] if argv is None else argv)[0])
    path = spec["cassette"]
    entry = entry_of(read_header(path).meta, path)
    try:
        target = load(entry)
    except EntryError as exc:  # e.g. a script that runs its agent when imported
        _not_called(spec, str(exc))
    run = Run(path, spec.get("mode", "replay"), unused=spec.get("unused", "warn"),
              allow_damaged=spec.get("allow_damaged", False),
              output=spec.get("output"))
    run.options.update(spec.get("options") or {})
    error: str | None = None
    try:
        if entry.is_async:
            async def root() -> Any:
                async with serving(entry.kind, target) as app_state:
                    with _started(run):
                        return await acall(entry, target, app_state)
            value = asyncio.run(root())
        else:
            with _started(run):
                value = call(entry, target)
    except _NotStarted as exc:
        _not_called(spec, str(exc))
    except BaseException as exc:
        found = _divergence(exc, run)
        if found is None:
            write_result(run, spec.get("result"), None)
            raise
        error = str(found)
        write_result(run, spec.get("result"), error)
        if found is not exc:  # an SDK wrapped it: its traceback, with the report last
            sys.excepthook = report_last(sys.excepthook)
            raise
        value = None
    else:
        write_result(run, spec.get("result"), None)
    if error is not None:
        sys.exit(1)
    if isinstance(value, Response):
        sys.stderr.write(f"HTTP {value.status}\n")
        value = value.body.decode("utf-8", "replace")
    sys.stdout.write(json.dumps(jsonable(DEFAULT.value(value)), indent=1) + "\n")


def _not_called(spec: dict[str, Any], why: str) -> NoReturn:
    """End the child without calling the entry; the parent says why, in one line."""
    if spec.get("result"):
        with open(spec["result"], "w", encoding="utf-8") as f:
            json.dump({"boot_error": why}, f)
    else:
        sys.stderr.write(f"replay: the entry point was not called: {why}\n")
    sys.exit(NOT_CALLED)


class _NotStarted(Exception):
    """The run could not start (a damaged cassette, ...): the entry is not called."""


@contextlib.contextmanager
def _started(run: Run) -> Iterator[None]:
    """``with run:``, with a failure to start told apart from the entry's own."""
    try:
        run.start()
    except (ReplayError, OSError) as exc:
        hint = ("; --allow-damaged replays what it holds"
                if "truncated" in str(exc) or "damaged" in str(exc) else "")
        raise _NotStarted(f"the replay session did not start: {exc}{hint}") from exc
    try:
        yield
    except BaseException as exc:
        run.stop(exc)
        raise
    run.stop(None)


def _divergence(exc: BaseException, run: Run) -> DivergenceError | None:
    """The divergence that ended the entry: ``exc`` itself, one it was raised from or
    during (an SDK wrapping it), else one the run noted (an SDK that dropped it)."""
    for link in chain(exc):
        if isinstance(link, DivergenceError):
            return link
    session = run.session
    if session is not None and session.divergences:
        return DivergenceError(session.divergences[0])
    return None
