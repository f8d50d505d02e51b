"""Exceptions as recorded data, and their re-raising on replay.

Recording keeps the type's qualified name, the message, the traceback text
and JSON-like ``args``. Replay re-raises the same type so the agent's
``except`` clauses behave as they did, but it only looks the type up among
modules *already imported* (a cassette never triggers an import) and only
accepts ``BaseException`` subclasses; anything else becomes a
:class:`ReplayedException` that carries the record.
"""

from __future__ import annotations

import sys
import traceback as _tb
from typing import Any

from replay._errors import ReplayError
from replay._events import RecordedError

_SCALARS = (str, int, float, bool, type(None), bytes)


class ReplayedException(ReplayError):
    """Stands in for a recorded exception whose type cannot be found on replay."""

    def __init__(self, recorded: RecordedError) -> None:
        self.recorded = recorded
        super().__init__(f"{recorded.type}: {recorded.message}")


def to_record(exc: BaseException) -> RecordedError:
    """The data kept for an exception raised while recording."""
    cls = type(exc)
    args = tuple(exc.args) if all(isinstance(a, _SCALARS) for a in exc.args) else (str(exc),)
    return RecordedError(
        type=f"{cls.__module__}.{cls.__qualname__}",
        message=str(exc),
        traceback="".join(_tb.format_exception(exc)),
        args=args,
    )


def resolve_type(name: str) -> type[BaseException] | None:
    """The exception class named ``module.QualName``, from loaded modules only."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:i]))
        if module is None:
            continue
        obj: Any = module
        for attr in parts[i:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        if isinstance(obj, type) and issubclass(obj, BaseException):
            return obj
        return None
    return None


def rebuild(recorded: RecordedError, seq: int | None = None) -> BaseException:
    """An exception equal in type and message to the recorded one."""
    cls = resolve_type(recorded.type)
    exc: BaseException
    if cls is None:
        exc = ReplayedException(recorded)
    else:
        try:
            exc = cls(*recorded.args)
        except Exception:
            exc = cls.__new__(cls, *recorded.args)
            exc.args = tuple(recorded.args)
        if str(exc) != recorded.message:
            try:
                exc = cls.__new__(cls, recorded.message)
                exc.args = (recorded.message,)
            except Exception:
                exc = ReplayedException(recorded)
    where = f" from event #{seq}" if seq is not None else ""
    exc.add_note(f"[agent-replay] replayed{where}; recorded traceback:\n{recorded.traceback}")
    return exc
