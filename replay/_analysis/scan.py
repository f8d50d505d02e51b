"""Find secret-shaped strings in a cassette: what ``replay scan`` reports.

It looks where redaction looks, and reports what redaction would have
removed: values of sensitive headers (any case; maps and ``[name, value]``
pairs), key-bearing URL query parameters, and known key shapes (plus the
user's patterns) in every string and bytes value, in joined stream chunks (a
key split over two chunks is found), in error text and in the header
metadata. Values already masked (``[REDACTED]``, ``****``) are not reported.
A finding keeps the secret itself for programs; its ``str()`` shows a short
masked preview, so scan output is safe to paste into an issue or a CI log.

vcrpy cassettes (YAML or JSON) are scanned too, through the importer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from replay._cassette.events import Event
from replay._cassette.redact import DEFAULT, REDACTED, Redactor

_LABELS = {
    r"sk-ant-": "anthropic-key", r"sk-proj-": "openai-project-key", r"sk-[": "openai-key",
    r"(?i:bearer)": "bearer-token", r"(?:AKIA|ASIA)": "aws-access-key",
    r"gh[pousr]_": "github-token", r"github_pat_": "github-pat", r"xox[abprs]-": "slack-token",
    r"AIza": "google-api-key",
}
_URL_PARAM = re.compile(r"([?&;])([^=&;#\s\"']+)=([^&;#\s\"']*)")
_MASKED = re.compile(r"^(?:\[REDACTED\]|\**)$")


@dataclass(frozen=True)
class Finding:
    """One secret-shaped string in a cassette."""

    seq: int | None
    """The event it is in (None: the cassette header)."""
    channel: str
    """That event's channel ("" for the header)."""
    where: str
    """Path inside the event: ``request.headers.authorization``, ``chunks``..."""
    kind: str
    """What it looks like: ``header:authorization``, ``param:api_key``, ``openai-key``..."""
    value: str
    """The secret itself (never printed by ``str()``)."""

    @property
    def preview(self) -> str:
        """A masked preview: the first few characters and the length."""
        keep = min(6, max(1, len(self.value) // 4))
        return f"{self.value[:keep]}… ({len(self.value)} chars)"

    def __str__(self) -> str:
        at = f"#{self.seq}" if self.seq is not None else "header"
        return f"{at:<7} {self.channel:<14} {self.where:<34} {self.kind:<20} {self.preview}"


class Scanner:
    """Finds what ``redactor`` would remove (patterns, headers, parameters)."""

    def __init__(self, redactor: Redactor = DEFAULT, extra_patterns: Iterable[str] = ()) -> None:
        self.headers = redactor.headers
        self.params = redactor.params
        self.patterns: list[tuple[str, re.Pattern[str]]] = []
        for i, p in enumerate((*redactor.patterns, *extra_patterns)):
            label = next((v for k, v in _LABELS.items() if p.startswith(k)), f"pattern-{i}")
            self.patterns.append((label, re.compile(p)))

    def text(self, s: str, where: str) -> Iterator[tuple[str, str, str]]:
        """(where, kind, value) for every secret in ``s``."""
        taken: list[tuple[int, int]] = []  # a more specific shape listed first wins
        for label, rx in self.patterns:
            for m in rx.finditer(s):
                if not any(a < m.end() and m.start() < b for a, b in taken):
                    taken.append(m.span())
                    yield where, label, m.group(0)
        if "=" in s:
            for m in _URL_PARAM.finditer(s):
                name, value = m.group(2), m.group(3)
                a, b = m.span(3)
                if (name.lower() in self.params and value and not _MASKED.match(value)
                        and not any(x < b and a < y for x, y in taken)):
                    yield where, f"param:{name.lower()}", value

    def value(self, v: Any, where: str, key: str | None = None
              ) -> Iterator[tuple[str, str, str]]:
        """Walk a stored value."""
        if key is not None and key.lower() in self.headers:
            for item in (v if isinstance(v, list | tuple) else [v]):
                if isinstance(item, str | bytes):
                    text = _text(item)
                    if text and not _MASKED.match(text):
                        yield where, f"header:{key.lower()}", text
            return
        if isinstance(v, str | bytes):
            yield from self.text(_text(v), where)
        elif isinstance(v, dict):
            for k, x in v.items():
                yield from self.value(x, f"{where}.{k}", k if isinstance(k, str) else None)
        elif isinstance(v, list | tuple):
            if (len(v) == 2 and isinstance(v[0], str | bytes)
                    and _text(v[0]).lower() in self.headers):
                yield from self.value(v[1], f"{where}.{_text(v[0]).lower()}", _text(v[0]))
                return
            for i, x in enumerate(v):
                yield from self.value(x, f"{where}[{i}]")

    def event(self, ev: Event) -> Iterator[Finding]:
        """Every finding in one event."""
        parts: list[tuple[Any, str]] = [(ev.request, "request"), (ev.response, "response"),
                                        (dict(ev.meta), "meta")]
        if ev.error is not None:
            parts += [(ev.error.type, "error.type"), (ev.error.message, "error.message"),
                      (ev.error.traceback, "error.traceback"), (list(ev.error.args), "error.args")]
        if ev.chunks:
            parts.append((b"".join(c.data for c in ev.chunks), "chunks"))
        if ev.site is not None:
            parts.append((str(ev.site), "site"))
        for value, where in parts:
            for w, kind, secret in self.value(value, where):
                yield Finding(ev.seq, ev.channel, w, kind, secret)


def _text(x: str | bytes) -> str:
    return x.decode("latin-1") if isinstance(x, bytes) else x


def scan_events(events: Iterable[Event], header_meta: Any = None, *,
                patterns: Iterable[str] = (), redactor: Redactor = DEFAULT) -> list[Finding]:
    """Every finding in ``events`` (and the header metadata), in event order."""
    scanner = Scanner(redactor, patterns)
    out: list[Finding] = []
    if header_meta:
        out += [Finding(None, "", w, kind, s)
                for w, kind, s in scanner.value(header_meta, "header.meta")]
    for ev in sorted(events, key=lambda e: e.seq):
        out.extend(scanner.event(ev))
    return out


def scan_file(path: str | os.PathLike[str], *, patterns: Iterable[str] = ()
              ) -> tuple[list[Finding], str | None]:
    """Findings in a cassette of ours or of vcrpy, and the damage met (if any)."""
    from replay._cassette import MAGIC, read_cassette
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
    if head != MAGIC:
        from replay._runs.import_vcr import vcr_cassette_events
        return scan_events(vcr_cassette_events(path), patterns=patterns), None
    cassette = read_cassette(path, strict=False)
    damage = str(cassette.damage) if cassette.damage is not None else None
    return (scan_events(cassette.events, dict(cassette.header.meta), patterns=patterns),
            damage)


__all__ = ["REDACTED", "Finding", "Scanner", "scan_events", "scan_file"]
