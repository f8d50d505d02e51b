"""Turning live Python values into cassette values.

Two rules, for two uses:

* :func:`strict` is for what replay must hand back (tool results, captured
  values): only JSON-like values (plus bytes and tuples) are accepted, so the
  replayed value is *equal* to the recorded one. Anything else raises
  :class:`UnrecordableValueError` at record time, not a surprise at replay.
* :func:`canonical` is for requests (what the agent asked): it never fails,
  maps dataclasses, pydantic models, enums, sets, paths and dates to stable
  JSON-like forms, and never includes memory addresses, so the same request
  compares equal in every run.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import math
import os
from collections.abc import Callable
from typing import Any

from replay._cassette.errors import UnrecordableValueError
from replay._cassette.events import Value

_MAX_DEPTH = 200
_EXACT = frozenset({str, int, bool, bytes, float, type(None)})
"""Leaves both rules take as they are (a float: canonical checks it is finite)."""
EXACT = _EXACT
_STR = frozenset({str})


def strict(value: Any, where: str, _depth: int = 0) -> Value:
    """``value`` if it can be stored and given back equal; else raise."""
    if _depth > _MAX_DEPTH:
        raise UnrecordableValueError(value, f"{where} (nested too deep)")
    if value is None or isinstance(value, bool | int | str | bytes):
        return value
    if isinstance(value, float):
        return value
    if type(value) is list:
        return [strict(v, where, _depth + 1) for v in value]
    if type(value) is tuple:
        return tuple(strict(v, where, _depth + 1) for v in value)
    if type(value) is dict:
        out: dict[str, Value] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise UnrecordableValueError(k, f"{where} (dict keys must be str)")
            out[k] = strict(v, where, _depth + 1)
        return out
    raise UnrecordableValueError(value, where)


def checker(where: str) -> Callable[[Any], Value]:
    """A check of values for :func:`strict`'s rule: it returns a value ``strict`` accepts
    as it is (no copy: for a value written at once and never kept, the recorder's
    short path), and raises as ``strict`` does for any other."""
    def check(value: Any) -> Value:
        checked: Value = value
        t = type(value)
        if t is dict:  # str keys and leaves (two C-level set checks), or strict's walk
            if not (_STR.issuperset(map(type, value))
                    and _EXACT.issuperset(map(type, value.values()))):
                strict(value, where)
        elif t not in _EXACT:
            strict(value, where)
        return checked
    return check


def leaf_checker(where: str) -> Callable[[Any], bool]:
    """:func:`checker`'s check that also says what it found: True for a leaf or a map of
    ``str`` keys to leaves (the recorder's writer then need not look at the types of
    its values again), False for any other value ``strict`` accepts as it is; raises
    as ``strict`` does for the rest."""
    def leafy(value: Any) -> bool:
        t = type(value)
        if t is dict:
            if (_STR.issuperset(map(type, value))
                    and _EXACT.issuperset(map(type, value.values()))):
                return True
        elif t in _EXACT:
            return True
        strict(value, where)
        return False
    return leafy


def canonical(value: Any, _depth: int = 0) -> Value:
    """A stable JSON-like form of ``value`` for matching and diffs."""
    if _depth > _MAX_DEPTH:
        return "<nested too deep>"
    t = type(value)
    if t is str or t is int or t is bool or value is None:  # most arguments
        same: Value = value
        return same
    if value is None or isinstance(value, bool | int | str | bytes):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, enum.Enum):
        return canonical(value.value, _depth + 1)
    if isinstance(value, dict):
        return {str(k): canonical(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v, _depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        items = [canonical(v, _depth + 1) for v in value]
        return sorted(items, key=repr)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return str(os.fspath(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name), _depth + 1)
                for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return canonical(dump(), _depth + 1)
        except Exception:
            pass
    return f"<{type(value).__module__}.{type(value).__qualname__}>"
