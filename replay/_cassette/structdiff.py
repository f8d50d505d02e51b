"""Structural differences between two JSON-like values.

Used by divergence reports, candidate ranking and the diff engine: a change is
named by its path (``args.city``, ``messages[3].content``) so a person sees
*which field* changed, not two walls of text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from replay._cassette.difftext import one_line
from replay._cassette.jsonable import short_repr

_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two values."""

    path: str
    """Where: dotted keys and ``[i]`` indexes from the root (``""`` is the root)."""
    kind: str
    """``changed``, ``added`` (only in the new value) or ``removed``."""
    old: Any = None
    """The value on the left (expected / recorded); None when added."""
    new: Any = None
    """The value on the right (actual / live); None when removed."""

    def __str__(self) -> str:
        return one_line(self)


def diff(old: Any, new: Any, *, limit: int = 10_000) -> list[Change]:
    """All differences from ``old`` to ``new``, at most ``limit`` of them."""
    out: list[Change] = []
    for change in _walk(old, new, ""):
        out.append(change)
        if len(out) >= limit:
            break
    return out


def _walk(old: Any, new: Any, path: str) -> Iterator[Change]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old:
            sub = _join(path, key)
            if key in new:
                yield from _walk(old[key], new[key], sub)
            else:
                yield Change(sub, "removed", old[key], None)
        for key in new:
            if key not in old:
                yield Change(_join(path, key), "added", None, new[key])
        return
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):
        for i in range(max(len(old), len(new))):
            sub = f"{path}[{i}]"
            if i >= len(new):
                yield Change(sub, "removed", old[i], None)
            elif i >= len(old):
                yield Change(sub, "added", None, new[i])
            else:
                yield from _walk(old[i], new[i], sub)
        return
    if type(old) is not type(new) or old != new:
        yield Change(path, "changed", old, new)


def _join(path: str, key: Any) -> str:
    k = key if isinstance(key, str) else short_repr(key, 1 << 20)
    if k.isidentifier():
        return f"{path}.{k}" if path else k
    return f"{path}[{k!r}]"


def distance(old: Any, new: Any) -> int:
    """A cheap dissimilarity score: how many leaf changes (capped)."""
    return len(diff(old, new, limit=1000))

