"""A cassette as stable, line-oriented text: what ``git diff`` compares (``show --textconv``).

One block per event in the run's order, payloads pretty-printed with sorted
keys, multi-line strings split into lines, and every value the comparison model
(:mod:`replay._analysis.compare`) calls noise replaced by ``~noise~``: clock,
random and uuid answers and the places they reappear, the model APIs' ids,
timestamps and token accounting, header values, a URL's port. Times, durations,
event numbers and a library's own reads are left out, so a cassette recorded
again with the same inputs gives the same text, and one that got another tool
result differs in exactly the lines that show it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from replay._analysis.compare import (
    MEANINGFUL_HEADERS,
    NOISE_CHANNELS,
    NOISE_KEYS,
    RunNoise,
    is_model_api,
)
from replay._analysis.payloads import view
from replay._analysis.usage import model_call
from replay._cassette.events import Event
from replay._cassette.jsonable import int_text
from replay._cassette.layout import Cassette

NOISE: Final = "~noise~"
"""What a noise value is shown as."""

HEADER_NOISE: Final = frozenset({"created", "hashseed"})
"""Header fields (and ``meta`` keys) that differ on every recording."""

_PORT = re.compile(r"^([a-z][a-z0-9+.-]*://[^/?#@]*@?[^/?#:]+):\d+", re.I)
_LOOPBACK_PORT = re.compile(r"(://(?:127\.0\.0\.1|localhost|\[::1\])):\d+")
"""A loopback server's port, anywhere in a string: a test server's ephemeral port."""


class _Noise:
    """Marks one event's noise values, given the run's own noise values."""

    def __init__(self, run: RunNoise) -> None:
        self.run = run
        self.pattern = run.pattern()

    def scalar(self, value: Any) -> Any:
        if isinstance(value, str):
            value = _LOOPBACK_PORT.sub(lambda m: f"{m.group(1)}:{NOISE}", value)
            return self.pattern.sub(NOISE, value)
        if isinstance(value, bytes):
            try:
                return self.scalar(value.decode("utf-8"))
            except UnicodeDecodeError:
                return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return NOISE if value in self.run.numbers else value
        return value

    def mark(self, value: Any, *, model_api: bool, response: bool, key: str = "") -> Any:
        """``value`` with its noise replaced by :data:`NOISE`."""
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for k, v in value.items():
                name = k if isinstance(k, str) else str(k)
                if model_api and name in NOISE_KEYS:
                    out[name] = NOISE
                elif name == "headers" and isinstance(v, dict):
                    out[name] = {h: (self.scalar(x) if response and h in MEANINGFUL_HEADERS
                                     else NOISE) for h, x in v.items()}
                else:
                    out[name] = self.mark(v, model_api=model_api, response=response, key=name)
            return out
        if isinstance(value, list | tuple):
            return [self.mark(v, model_api=model_api, response=response) for v in value]
        if key == "url" and isinstance(value, str):
            value = _PORT.sub(lambda m: f"{m.group(1)}:{NOISE}", value)
        return self.scalar(value)


# -- rendering ---------------------------------------------------------------------
def _scalar_text(value: Any) -> str:
    if value is NOISE or value == NOISE:
        return NOISE
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return int_text(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes):
        try:
            return "b" + json.dumps(value.decode("utf-8"), ensure_ascii=False)
        except UnicodeDecodeError:
            return f"<{len(value)} bytes, sha256 {hashlib.sha256(value).hexdigest()[:16]}>"
    return json.dumps(value if isinstance(value, str) else str(value), ensure_ascii=False)


def _is_block(value: Any) -> bool:
    return isinstance(value, str) and "\n" in value and value != NOISE


def render(value: Any, indent: int = 0) -> Iterator[str]:
    """``value`` as indented lines: maps with sorted keys, lists one item a line,
    multi-line strings as ``|`` blocks."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            yield pad + "{}"
            return
        for k in sorted(value, key=str):
            yield from _entry(pad + _key(k) + ":", value[k], indent)
    elif isinstance(value, list | tuple):
        if not value:
            yield pad + "[]"
            return
        for item in value:
            yield from _entry(pad + "-", item, indent)
    elif _is_block(value):
        yield pad + "|"
        yield from (pad + "  " + line for line in value.split("\n"))
    else:
        yield pad + _scalar_text(value)


def _key(k: Any) -> str:
    text = k if isinstance(k, str) else str(k)
    return text if re.fullmatch(r"[\w$.@/-]+", text) else json.dumps(text, ensure_ascii=False)


def _entry(head: str, value: Any, indent: int) -> Iterator[str]:
    if head.endswith("-") and isinstance(value, dict) and value:  # "- key: value" items
        lines = render(value, indent + 2)
        yield head + " " + next(lines).lstrip()
        yield from lines
    elif isinstance(value, dict | list | tuple) and value:
        yield head
        yield from render(value, indent + 2)
    elif _is_block(value):
        yield head + " |"
        yield from (" " * (indent + 2) + line for line in value.split("\n"))
    elif isinstance(value, dict):
        yield head + " {}"
    elif isinstance(value, list | tuple):
        yield head + " []"
    else:
        yield head + " " + _scalar_text(value)


def _site(ev: Event) -> str:
    if ev.site is None:
        return ""
    name = ev.site.file.replace("\\", "/").rsplit("/", 1)[-1]
    return f"  at {name}:{ev.site.line} {ev.site.function}"


def _header_lines(cassette: Cassette, noise: _Noise) -> Iterator[str]:
    h = cassette.header
    meta: dict[str, Any] = {k: (NOISE if k in HEADER_NOISE else v) for k, v in h.meta.items()}
    fp = meta.get("fingerprint")
    if isinstance(fp, dict):  # the commit it was recorded at: a new one every time
        meta["fingerprint"] = {k: v for k, v in fp.items() if k != "git"}
    yield from render(noise.mark({"argv": list(h.argv), "created": NOISE, "format": h.version,
                                  "python": h.python, "platform": h.platform, "meta": meta},
                                 model_api=False, response=True))


def event_lines(ev: Event, noise: _Noise, channels: Mapping[int, str]) -> Iterator[str]:
    """One event's block (without its trailing blank line)."""
    parent = f"  inside {channels.get(ev.parent, '?')}" if ev.parent is not None else ""
    yield f"=== {ev.channel}  task {ev.task}{_site(ev)}{parent}"
    model_api = is_model_api(ev)
    shown = view(ev, model_call(ev))
    if ev.channel in NOISE_CHANNELS:
        shown["response"] = NOISE if ev.error is None else None
    marked = {k: noise.mark(v, model_api=model_api, response=k != "request")
              for k, v in shown.items() if v is not None or k == "request"}
    meta = {k: v for k, v in ev.meta.items() if not k.endswith("_ns") and k != "lib"}
    if meta:
        marked["meta"] = noise.mark(meta, model_api=False, response=True)
    yield from render(marked)


def textconv(cassette: Cassette) -> Iterator[str]:
    """The cassette's text form, line by line (no line ends)."""
    events = sorted(cassette.events, key=lambda e: e.seq)
    noise = _Noise(RunNoise(events))
    channels = {e.seq: e.channel for e in events}
    shown = [e for e in events if not (isinstance(e.meta, dict) and "lib" in e.meta)]
    yield f"agent-replay cassette: {len(shown)} events (noise shown as {NOISE}; " \
          "times and event numbers left out)"
    yield from _header_lines(cassette, noise)
    for ev in shown:
        yield ""
        yield from event_lines(ev, noise, channels)
    if cassette.damage is not None:
        yield ""
        yield f"damaged: {cassette.damage}"
