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
from collections.abc import Callable
from typing import Any

from replay._cassette.errors import ReplayError
from replay._cassette.events import RecordedError

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


def _safe_str(exc: BaseException) -> str | None:
    try:
        return str(exc)
    except Exception:
        return None


def _construct(cls: type[BaseException], recorded: RecordedError) -> BaseException | None:
    """``cls`` built from the recorded args, if that gives the recorded message."""
    makers: tuple[Callable[[], BaseException], ...] = (
        lambda: cls(*recorded.args), lambda: cls.__new__(cls, *recorded.args))
    for make in makers:
        try:
            exc = make()
            exc.args = tuple(recorded.args)
        except Exception:
            continue
        if _safe_str(exc) == recorded.message:
            return exc
    return None


def _stand_in(cls: type[BaseException], recorded: RecordedError) -> BaseException | None:
    """A subclass of ``cls`` that carries the message without running ``cls``'s
    constructor, for types that need more than a message to be built (an
    aiohttp connector error wants a connection key). ``except cls`` catches it."""
    message = recorded.message
    try:
        sub: type[BaseException] = type(cls.__name__, (cls,), {
            "__init__": lambda self, *a, **k: None,
            "__str__": lambda self: message,
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
        })
        exc: BaseException = sub.__new__(sub)
        BaseException.__init__(exc, message)
        return exc
    except Exception:
        return None


def rebuild(recorded: RecordedError, seq: int | None = None) -> BaseException:
    """An exception equal in type and message to the recorded one.

    Never raises itself: an exception type that cannot be rebuilt becomes a
    subclass of it carrying the message, and failing that a
    :class:`ReplayedException`.
    """
    cls = resolve_type(recorded.type)
    exc: BaseException | None = None
    if cls is not None:
        exc = _construct(cls, recorded) or _stand_in(cls, recorded)
    if exc is None:
        exc = ReplayedException(recorded)
    where = f" from event #{seq}" if seq is not None else ""
    exc.add_note(f"[agent-replay] replayed{where}; recorded traceback:\n{recorded.traceback}")
    return exc
