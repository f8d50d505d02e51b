"""Cassette values as text for people and as JSON, whatever they hold.

Every value a cassette holds can be shown: an int of 30,000 bits (Python
refuses to print more than 4300 digits), NaN, bytes, a value of a million
items (only as much as is shown is rendered).
"""

from __future__ import annotations

import base64
import math
from typing import Any, Final

from replay._cassette.events import Event

_CHUNK: Final = 10**500
"""Decimal digits are made 500 at a time: under any limit Python can be set to (640)."""


def int_text(n: int) -> str:
    """``str(n)``, also for an int too long for the interpreter to print."""
    try:
        return str(n)
    except ValueError:
        pass
    sign, n = ("-", -n) if n < 0 else ("", n)
    parts = []
    while n:
        n, low = divmod(n, _CHUNK)
        parts.append(low)
    head, *rest = reversed(parts)
    return sign + str(head) + "".join(str(p).zfill(500) for p in rest)


def _quoted(s: str | bytes, limit: int) -> str:
    """The first ``limit`` characters of ``repr(s)`` without rendering all of a long ``s``."""
    if len(s) <= limit:
        return repr(s)[:limit]
    # repr picks its quotes from the whole value: make the head pick the same ones.
    if isinstance(s, str):
        text = s[:limit]
        double = "'" in s and '"' not in s
        if double != ("'" in text and '"' not in text):
            text += "'" if double else "'\""
        return repr(text)[:limit]
    data = s[:limit]
    double = b"'" in s and b'"' not in s
    if double != (b"'" in data and b'"' not in data):
        data += b"'" if double else b"'\""
    return repr(data)[:limit]


class _Full(Exception):
    """The rendering reached its limit."""


class _Short:
    """The first ``limit`` characters of a value's repr, and no more work than that."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0

    def put(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size > self.limit:
            raise _Full

    def walk(self, v: Any) -> None:
        t = type(v)
        if t is dict:
            self.put("{")
            first = True
            for key, value in v.items():
                if not first:
                    self.put(", ")
                first = False
                self.walk(key)
                self.put(": ")
                self.walk(value)
            self.put("}")
        elif t is list or t is tuple:
            self.put("[" if t is list else "(")
            for i, x in enumerate(v):
                if i:
                    self.put(", ")
                self.walk(x)
            self.put("]" if t is list else ",)" if len(v) == 1 else ")")
        elif t is str or t is bytes:
            self.put(_quoted(v, self.limit - self.size + 1))
        elif t is int:
            self.put(int_text(v))
        else:
            self.put(repr(v))


def short_repr(value: Any, limit: int) -> str:
    """``repr(value)``, or its first ``limit`` characters when it is longer.

    Renders only what it returns (a value of a million items costs what its
    first items do) and prints ints of any size.
    """
    t = type(value)
    if t is str or t is bytes:
        return _quoted(value, limit)
    if t is int:
        return int_text(value)[:limit]
    if t is not list and t is not tuple and t is not dict:
        return repr(value)[:limit]
    short = _Short(limit)
    try:
        short.walk(value)
    except _Full:
        pass
    except RecursionError:  # nested deeper than the stack allows: shown as far as it got
        short.parts.append("...")
    return "".join(short.parts)[:limit]


def _key(k: Any) -> str:
    if type(k) is str:
        return k
    return int_text(k) if type(k) is int else short_repr(k, 1 << 20)


def jsonable(value: Any) -> Any:
    """``value`` as ``json.dumps`` can write it, as strict JSON: bytes as
    ``{"$text": ...}`` (UTF-8) or ``{"$bytes": base64}``, tuples as lists, NaN and
    the infinities as ``{"$float": "nan" | "inf" | "-inf"}``, an int too long
    for Python to print as ``{"$int": "<decimal digits>"}``, keys as strings."""
    if isinstance(value, bytes):
        try:
            return {"$text": value.decode("utf-8")}
        except UnicodeDecodeError:
            return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {_key(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if type(value) is float and not math.isfinite(value):
        return {"$float": repr(value)}
    if type(value) is int and value.bit_length() > 2000:  # 600 digits; the limit is >= 640
        try:
            str(value)
        except ValueError:
            return {"$int": int_text(value)}
    return value


def event_json(ev: Event) -> dict[str, Any]:
    """One event as a JSON object (the shape documented in docs/cli.md)."""
    return jsonable(ev.to_map())  # type: ignore[no-any-return]
