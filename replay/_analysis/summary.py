"""One-line summaries of events, shared by ``replay show``, reports and the TUI."""

from __future__ import annotations

from typing import Any

from replay._cassette.events import Event
from replay._cassette.jsonable import short_repr


def brief(value: Any, width: int = 60) -> str:
    """A short single-line rendering of a value (its repr, cut; only what is
    shown is rendered, so a value of any size or an int of any length is fine)."""
    if isinstance(value, bytes):
        text = value[:width].decode("utf-8", "replace")
        text = repr(text) if len(value) <= width else repr(text)[:-1] + "...'"
    else:
        text = short_repr(value, width + 1)
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 3] + "..."


def _text(value: Any) -> str:
    """``str(value)`` for a str, a brief repr of anything else (a damaged file's)."""
    return value if isinstance(value, str) else brief(value, 40)


def summarize(ev: Event, width: int = 80) -> str:
    """What was asked and what came back, in one line."""
    req = ev.request
    if isinstance(req, dict):
        if "method" in req and "url" in req:
            ask = f"{_text(req['method'])} {_text(req['url'])}"
        elif "fn" in req:
            rest = {k: v for k, v in req.items() if k != "fn" and v is not None}
            args = ", ".join(f"{_text(k)}={brief(v, 24)}" for k, v in rest.items())
            ask = f"{_text(req['fn'])}({args})"
        elif "args" in req and isinstance(req["args"], dict):
            args = ", ".join(f"{_text(k)}={brief(v, 24)}" for k, v in req["args"].items())
            ask = f"{ev.channel.split(':', 1)[-1]}({args})"
        else:
            ask = brief(req, 40)
    else:
        ask = brief(req, 40)
    if ev.error is not None:
        got = f"raised {ev.error.type.rsplit('.', 1)[-1]}: {ev.error.message}"
    elif ev.channel == "http" and isinstance(ev.response, dict) and "status" in ev.response:
        got = _text(ev.response["status"])
        if ev.chunks:
            got += f", {_chunks(ev)}"
    elif ev.chunks:
        got = _chunks(ev)
    else:
        got = brief(ev.response, 40)
    line = f"{ask} -> {got}"
    return line if len(line) <= width else line[: width - 3] + "..."


def _chunks(ev: Event) -> str:
    """``N chunks`` for a stream; a plain answer read whole (one chunk, not
    server-sent events) is ``not streamed``, as the TUI labels it."""
    n = len(ev.chunks)
    headers = ev.response.get("headers") if isinstance(ev.response, dict) else None
    pairs = headers.items() if isinstance(headers, dict) else (
        [p for p in headers if isinstance(p, list | tuple) and len(p) == 2]
        if isinstance(headers, list) else [])
    sse = any(str(k).lower() == "content-type" and "event-stream" in str(v) for k, v in pairs)
    if n == 1 and not sse:
        return "not streamed"
    return f"{n} chunk{'s' * (n != 1)}"
