"""Showing two values that differ so a person sees where: one formatter for every report.

Divergence reports (``replay play``, the pytest plugin, the Python API) and
``replay diff`` show a changed value with this module. Long values are clipped
around their *first differing character*, at the same place on both sides, so
a change late in a long prompt stays visible; multi-line text is shown as a
unified diff (:mod:`difflib`, the standard library's). Redaction is the
caller's job: values reach this module already as they may be shown.
"""

from __future__ import annotations

import difflib
from typing import Any, Protocol

from replay._cassette.jsonable import short_repr

ELLIPSIS = "..."
"""Marks text left out of a clipped value."""
MAX_DIFF_LINES = 40
"""Lines of a unified diff shown before the rest is counted."""
_REPR_LIMIT = 200_000


class ChangeLike(Protocol):
    """What is read of a :class:`~replay._cassette.structdiff.Change`."""

    @property
    def path(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def old(self) -> Any: ...
    @property
    def new(self) -> Any: ...


def first_difference(a: str, b: str) -> int:
    """Index of the first character where ``a`` and ``b`` differ (the shorter
    length when one is a prefix of the other)."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def clip_pair(a: str, b: str, width: int = 100) -> tuple[str, str]:
    """``a`` and ``b`` clipped to about ``width`` characters each, around their first
    differing character: the same window start on both sides, marked with ``...``."""
    width = max(width, 20)
    if len(a) <= width and len(b) <= width:
        return a, b
    at = first_difference(a, b)
    # A third of the window as context before the difference, more when the
    # longer side ends before the window does.
    start = max(0, min(at - width // 3, max(len(a), len(b)) - width))

    def cut(s: str) -> str:
        end = start + width
        return ((ELLIPSIS if start > 0 else "") + s[start:end]
                + (ELLIPSIS if end < len(s) else ""))
    return cut(a), cut(b)


def clip(text: str, width: int = 100) -> str:
    """``text`` clipped at its end to ``width`` characters."""
    return text if len(text) <= width else text[: width - len(ELLIPSIS)] + ELLIPSIS


def shown_pair(old: Any, new: Any, width: int = 100) -> tuple[str, str]:
    """The reprs of two values, clipped around where they first differ."""
    return clip_pair(short_repr(old, _REPR_LIMIT), short_repr(new, _REPR_LIMIT), width)


def _multiline(old: Any, new: Any) -> bool:
    return (isinstance(old, str) and isinstance(new, str)
            and ("\n" in old.strip("\n") or "\n" in new.strip("\n")))


def unified(old: str, new: str, *, left: str = "expected", right: str = "actual",
            width: int = 100, max_lines: int = MAX_DIFF_LINES) -> list[str]:
    """A unified diff of two texts (2 lines of context), long lines clipped around
    their first difference with the line they replace."""
    body = list(difflib.unified_diff(old.splitlines(), new.splitlines(), left, right,
                                     lineterm="", n=2))
    out: list[str] = []
    i = 0
    while i < len(body):
        line = body[i]
        if line.startswith("-") and not line.startswith("---"):
            minus = []
            while i < len(body) and body[i].startswith("-"):
                minus.append(body[i])
                i += 1
            plus = []
            while i < len(body) and body[i].startswith("+") and not body[i].startswith("+++"):
                plus.append(body[i])
                i += 1
            for k in range(max(len(minus), len(plus))):
                if k < len(minus) and k < len(plus):
                    a, b = clip_pair(minus[k][1:], plus[k][1:], width)
                    minus[k], plus[k] = "-" + a, "+" + b
            out += [m if len(m) <= width + 8 else clip(m, width) for m in minus]
            out += [p if len(p) <= width + 8 else clip(p, width) for p in plus]
            continue
        out.append(line if len(line) <= width + 8 else clip(line, width))
        i += 1
    if len(out) > max_lines:
        out = [*out[:max_lines], f"... ({len(out) - max_lines} more diff lines)"]
    return out


def change_lines(change: ChangeLike, width: int = 100, *, label: str = "",
                 left: str = "expected", right: str = "actual") -> list[str]:
    """One structural change as lines: ``path: old -> new`` when that fits in
    ``width``; else the path, then ``- old`` and ``+ new`` clipped around their
    first difference; a unified diff for multi-line text. ``label`` (``noise``...)
    is added after the path."""
    where = (change.path or "(value)") + (f" ({label})" if label else "")
    if change.kind == "added":
        return [f"{where}: added {clip(short_repr(change.new, width + 1), width)}"]
    if change.kind == "removed":
        return [f"{where}: removed (was {clip(short_repr(change.old, width + 1), width)})"]
    if _multiline(change.old, change.new):
        return [f"{where}: text changed"] + ["  " + line for line in unified(
            change.old, change.new, left=left, right=right, width=width)]
    full_old = short_repr(change.old, width + 1)
    full_new = short_repr(change.new, width + 1)
    one = f"{where}: {full_old} -> {full_new}"
    if len(one) <= width + 20 and len(full_old) <= width and len(full_new) <= width:
        return [one]
    old, new = shown_pair(change.old, change.new, width)
    return [f"{where}:", f"  - {old}", f"  + {new}"]


def one_line(change: ChangeLike, width: int = 80) -> str:
    """One structural change on one line: both sides clipped around their first
    difference (``str(change)``)."""
    where = change.path or "(value)"
    if change.kind == "added":
        return f"{where}: added {clip(short_repr(change.new, width + 1), width)}"
    if change.kind == "removed":
        return f"{where}: removed (was {clip(short_repr(change.old, width + 1), width)})"
    old, new = shown_pair(change.old, change.new, width)
    return f"{where}: {old} -> {new}"
