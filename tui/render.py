"""Turning recorded values into text people can read: JSON-ish, bytes-safe, capped."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.syntax import Syntax
from rich.text import Text

import replay
from tui.payloads import streamed

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
    """``replay.summarize`` with HTTP made compact: no scheme, a model call named by model,
    no chunk count for an answer that was not streamed.

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
    if ev.chunks and not streamed(ev):  # read whole: its chunk count says nothing
        got = got.split(", ", 1)[0]
    if len(ask) + len(got) + 4 > width:  # narrow: the status without the chunk count
        got = got.split(", ", 1)[0]
    tail = f" -> {got}"
    if len(tail) > width // 2 and len(ask) + len(tail) > width:
        tail = tail[: max(0, width // 2 - 3)] + "..."
    room = width - len(tail)
    if len(ask) > room and isinstance(model, str):  # narrow: the model alone
        ask = model
    if len(ask) > room:
        ask = ask[: max(0, room - 3)] + "..."
    return f"{ask}{tail}"[:width]


def one_line(value: Any, width: int = 70) -> str:
    """Compact single-line JSON of ``value``, cut to ``width``."""
    text = json.dumps(jsonable(value), ensure_ascii=False, default=repr)
    return text if len(text) <= width else text[: width - 1] + "…"


def around_difference(old: str, new: str, width: int = 60) -> tuple[str, str]:
    """Both strings cut to a window around where they first differ."""
    p = 0
    while p < min(len(old), len(new)) and old[p] == new[p]:
        p += 1
    start = max(0, p - width // 3)

    def cut(text: str) -> str:
        part = text[start:start + width]
        return ("…" if start else "") + repr(part)[1:-1] + ("…" if start + width < len(text)
                                                             else "")
    return cut(old), cut(new)


def change_sides(change: replay.Change, width: int = 60) -> tuple[str, str]:
    """The old and new value of a change as short text, strings cut around where
    they differ."""
    if isinstance(change.old, str) and isinstance(change.new, str):
        return around_difference(change.old, change.new, width)
    return one_line(change.old, width), one_line(change.new, width)


def change_text(change: replay.Change, width: int = 60) -> str:
    """``4990.0 → 49.9`` (``+ new`` when added, ``- old`` when removed)."""
    old, new = change_sides(change, width)
    if change.kind == "added":
        return f"+ {new}"
    if change.kind == "removed":
        return f"- {old}"
    return f"{old} → {new}"


def damage_banner(damage: Sequence[str]) -> Text:
    """The red banner: what is wrong with each damaged cassette."""
    lines = [f"⚠ damaged cassette {d}" for d in damage]
    lines.append("Showing the events that could be read before the damage.")
    return Text("\n".join(lines), style="bold")


def pair_changes(pair: replay.AlignedPair, show_noise: bool = False, limit: int = 60
                 ) -> list[Text]:
    """One line per structural change of an aligned pair (``path  changed  old → new``);
    noise changes collapsed into one line unless ``show_noise``."""
    kinds = (pair.change_kinds if len(pair.change_kinds) == len(pair.changes)
             else (pair.kind,) * len(pair.changes))
    shown = [(c, k) for c, k in zip(pair.changes, kinds, strict=True)
             if show_noise or k.value != "noise"]
    out: list[Text] = []
    for ch, k in shown[:limit]:
        noise = k.value == "noise"
        line = Text.assemble((ch.path or "(value)", "dim" if noise else "bold #e0af68"),
                             f"  {ch.kind}  ", ("noise  " if noise else "", "dim italic"))
        old, new = change_sides(ch)
        if ch.kind != "added":
            line.append(old, style="dim" if noise else "#f7768e")
        if ch.kind == "changed":
            line.append("  →  ")
        if ch.kind != "removed":
            line.append(new, style="dim" if noise else "#9ece6a")
        out.append(line)
    if len(shown) > limit:
        out.append(Text(f"… {len(shown) - limit} more changes", style="dim"))
    hidden = len(pair.changes) - len(shown)
    if hidden:
        out.append(Text(f"≈ {hidden} noise change{'s' * (hidden != 1)} (ids, clock, random "
                        "values) not shown; z shows them", style="dim italic"))
    return out
