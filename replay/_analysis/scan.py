"""Find secret-shaped strings in a cassette: what ``replay scan`` reports.

It looks where redaction looks, with the redactor's own rules (one source of
truth: ``replay._cassette.secret_rules``), and reports what redaction would
have removed: values of sensitive headers and fields (any case; maps and
``[name, value]`` pairs), map keys that are secrets themselves, key-bearing
URL query parameters, values after a sensitive name in text, and every known
key shape (plus the user's patterns) in every string and bytes value, in
joined stream chunks (a key split over two chunks is found), in error text
and in the cassette header (argv, with the value after ``--api-key``-like
flags, and metadata). Values already masked (``[REDACTED]``, ``****``) are
not reported. A finding keeps the secret itself for programs; its ``str()``
shows a short masked preview, so scan output is safe to paste into an issue
or a CI log.

vcrpy cassettes (YAML or JSON) are scanned too, through the importer.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from replay._cassette.events import Event
from replay._cassette.layout import Header
from replay._cassette.redact import DEFAULT, REDACTED, Redactor
from replay._cassette.secret_rules import is_masked


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
    """What it looks like: ``header:authorization``, ``field:password``,
    ``param:api_key``, ``flag:--api-key``, ``openai-key``, ``jwt``..."""
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


Hit = tuple[str, str, str]
"""(where, kind, secret)."""


class Scanner:
    """Finds what ``redactor`` would remove (shapes, names, headers, parameters)."""

    def __init__(self, redactor: Redactor = DEFAULT, extra_patterns: Iterable[str] = ()) -> None:
        extra = tuple(extra_patterns)
        self.redactor = (dataclasses.replace(redactor, patterns=redactor.patterns + extra)
                         if extra else redactor)
        self.headers = redactor.headers
        self.params = redactor.params

    def text(self, s: str, where: str) -> Iterator[Hit]:
        """(where, kind, value) for every secret in ``s``."""
        for a, b, label in self.redactor.find(s):
            yield where, label, s[a:b]

    def _named(self, v: Any, where: str, key: str) -> Iterator[Hit]:
        """A value under a sensitive name: reported whole when it is text."""
        kind = f"header:{key.lower()}" if key.lower() in self.headers else f"field:{key.lower()}"
        items = v if isinstance(v, list | tuple) else [v]
        if items and all(isinstance(x, str | bytes) for x in items):
            for item in items:
                text = _text(item)
                if text and not is_masked(text):
                    yield where, kind, text
        else:
            yield from self.value(v, where)

    def value(self, v: Any, where: str, key: str | None = None) -> Iterator[Hit]:
        """Walk a stored value."""
        if key is not None and self.redactor.sensitive_key(key):
            yield from self._named(v, where, key)
        elif isinstance(v, str | bytes):
            yield from self.text(_text(v), where)
        elif isinstance(v, dict):
            for k, x in v.items():
                name = _text(k) if isinstance(k, str | bytes) else None
                if name is not None:
                    yield from self.text(name, f"{where}{{key}}")
                yield from self.value(x, f"{where}.{k}", name)
        elif isinstance(v, list | tuple):
            if self.redactor.header_pair(v):
                yield from self.text(_text(v[0]), f"{where}[0]")
                yield from self._named(v[1], f"{where}.{_text(v[0]).lower()}", _text(v[0]))
                return
            for i, x in enumerate(v):
                yield from self.value(x, f"{where}[{i}]")

    def argv(self, argv: Iterable[str], where: str) -> Iterator[Hit]:
        """A command line: every secret in it, and the value after ``--api-key``-like flags."""
        flag = None
        for i, arg in enumerate(argv):
            hits = list(self.text(arg, f"{where}[{i}]"))
            if flag is not None and not arg.startswith("-") and not hits:
                if arg and not is_masked(arg):  # a value with no known shape: the flag says
                    hits = [(f"{where}[{i}]", f"flag:{flag}", arg)]
                flag = None
            else:
                flag = arg if self.redactor.secret_flag(arg) else None
            yield from hits

    def header(self, header: Header | Mapping[str, Any]) -> Iterator[Hit]:
        """A cassette header (or only its metadata map)."""
        if isinstance(header, Header):
            yield from self.argv(header.argv, "header.argv")
            for name in ("created", "python", "platform"):
                yield from self.text(getattr(header, name), f"header.{name}")
            header = header.meta
        if header:
            yield from self.value(dict(header), "header.meta")

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


def scan_events(events: Iterable[Event], header: Header | Mapping[str, Any] | None = None, *,
                patterns: Iterable[str] = (), redactor: Redactor = DEFAULT) -> list[Finding]:
    """Every finding in the cassette ``header`` (or its metadata map) and ``events``,
    in event order."""
    scanner = Scanner(redactor, patterns)
    out: list[Finding] = []
    if header:
        out += [Finding(None, "", w, kind, s) for w, kind, s in scanner.header(header)]
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
    return scan_events(cassette.events, cassette.header, patterns=patterns), damage


__all__ = ["REDACTED", "Finding", "Scanner", "scan_events", "scan_file"]
