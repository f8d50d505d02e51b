"""Turning recorded values into text people can read: JSON-ish, bytes-safe, capped."""

from __future__ import annotations

import json
from typing import Any

from rich.syntax import Syntax
from rich.text import Text

import replay

BACKGROUND = "#1a1b26"
"""The screen background of tui/replay.tcss, behind highlighted code."""
MAX_LINES = 400
"""Longest pretty payload shown in the detail pane before it is cut."""


def int_text(n: int) -> str:
    """``str(n)``, also for an int of more digits than Python prints (4300)."""
    try:
        return str(n)
    except ValueError:
        pass
    sign, n = ("-", -n) if n < 0 else ("", n)
    parts = []
    while n:
        n, low = divmod(n, 10**500)  # any digit limit Python allows is over 500
        parts.append(low)
    head, *rest = reversed(parts)
    return sign + str(head) + "".join(str(p).zfill(500) for p in rest)


def jsonable(value: Any) -> Any:
    """``value`` with bytes made text (UTF-8, else hex), tuples made lists, keys
    made strings and an int too long for Python to print made a string of digits."""
    if isinstance(value, dict):
        return {k if isinstance(k, str) else jsonable_key(k): jsonable(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            head = value[:64].hex()
            return f"<{len(value)} bytes: {head}{'…' if len(value) > 64 else ''}>"
    if type(value) is int and value.bit_length() > 2000:  # over 600 digits: printable?
        try:
            str(value)
        except ValueError:
            return int_text(value)
    return value


def jsonable_key(key: Any) -> str:
    """A map key as text."""
    return int_text(key) if type(key) is int else str(jsonable(key))


def pretty(value: Any, max_lines: int = MAX_LINES) -> tuple[str, int]:
    """Indented JSON of ``value`` and how many lines were cut (0 when whole).

    A string that holds JSON (an SSE payload, tool-call arguments) is shown parsed.
    """
    value = jsonable(value)
    if isinstance(value, str) and value[:1] in "{[":
        try:
            value = json.loads(value)
        except ValueError:
            pass
    text = json.dumps(value, indent=2, ensure_ascii=False, default=repr)
    lines = text.split("\n")
    if len(lines) <= max_lines:
        return text, 0
    return "\n".join(lines[:max_lines]), len(lines) - max_lines


def json_block(value: Any, max_lines: int = MAX_LINES) -> list[Syntax | Text]:
    """Highlighted JSON of ``value``, with a note when it was cut."""
    text, cut = pretty(value, max_lines)
    out: list[Syntax | Text] = [highlight(text, "json")]
    if cut:
        out.append(Text(f"… {cut} more lines (see the conversation tab, or replay show --json)",
                        style="italic dim"))
    return out


def highlight(code: str, lexer: str) -> Syntax:
    """Syntax-highlighted text on the terminal's own background."""
    return Syntax(code, lexer, theme="monokai", background_color=BACKGROUND, word_wrap=True)


def line_summary(ev: replay.Event, width: int) -> str:
    """``replay.summarize`` with HTTP made compact: no scheme, a model call named by model.

    The answer (``-> 200``) is kept whole when there is room for both sides.
    """
    req = ev.request
    if ev.channel != "http" or not isinstance(req, dict) or "url" not in req:
        return replay.summarize(ev, width)
    url = str(req["url"]).split("://", 1)[-1]
    body = req.get("body")
    model = body.get("model") if isinstance(body, dict) else None
    if isinstance(model, str):  # a model call: the model and the API's last path part
        ask = f"{model} {url.split('?', 1)[0].rstrip('/').rsplit('/', 1)[-1]}"
    else:
        ask = f"{req.get('method', '?')!s} {url}"
    full = replay.summarize(ev, 10_000)
    got = full.rsplit(" -> ", 1)[-1] if " -> " in full else ""
    tail = f" -> {got}"
    if len(tail) > width // 2 and len(ask) + len(tail) > width:
        tail = tail[: max(0, width // 2 - 3)] + "..."
    room = width - len(tail)
    if len(ask) > room:
        ask = ask[: max(0, room - 3)] + "..."
    return f"{ask}{tail}"[:width]


def one_line(value: Any, width: int = 70) -> str:
    """Compact single-line JSON of ``value``, cut to ``width``."""
    text = json.dumps(jsonable(value), ensure_ascii=False, default=repr)
    return text if len(text) <= width else text[: width - 1] + "…"
