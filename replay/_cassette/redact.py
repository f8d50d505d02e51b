"""Secrets never reach the disk: redaction applied to every event before it is written.

The cassette writer calls a :class:`Redactor` on each event (record, append,
re-record, edit and import all go through the writer), so there is one place
where secrets are removed, before compression. By default it removes:

* values of sensitive headers, in any letter case, wherever a header map or
  ``[name, value]`` header list appears: ``Authorization``,
  ``Proxy-Authorization``, ``x-api-key``, ``api-key``, ``Cookie``,
  ``Set-Cookie`` and friends;
* values of key-bearing query parameters inside URLs (``api_key=``, ``key=``,
  ``token=``, ``access_token=``, ``sig=``...);
* known key shapes anywhere in strings and bytes: OpenAI ``sk-...`` /
  ``sk-proj-...``, Anthropic ``sk-ant-...``, ``Bearer ...`` tokens, AWS
  ``AKIA...``, GitHub ``ghp_...``/``github_pat_...``, Slack ``xox?-...``,
  Google ``AIza...``, plus the user's own patterns and callback.

Streamed chunks are redacted across chunk boundaries (a key split over two
SSE chunks is still found) with a same-length mask, so chunk boundaries and
sizes replay exactly. Matching ignores redacted values (see ``REDACTED``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from typing import Any

from replay._cassette.events import Chunk, Event, RecordedError, Value

REDACTED = "[REDACTED]"
"""What a redacted string value becomes."""

SENSITIVE_HEADERS = frozenset({
    "authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie",
    "x-auth-token", "x-goog-api-key", "openai-organization-key", "x-amz-security-token",
})
"""Header names (lower case) whose values are always removed."""

SENSITIVE_PARAMS = frozenset({
    "api_key", "apikey", "api-key", "key", "token", "access_token", "refresh_token",
    "id_token", "client_secret", "secret", "password", "sig", "signature", "auth",
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "code",
})
"""Query parameter names (lower case) whose values are removed from URLs."""

DEFAULT_PATTERNS: tuple[str, ...] = (
    r"sk-ant-[A-Za-z0-9_\-]{8,}",
    r"sk-proj-[A-Za-z0-9_\-]{8,}",
    r"sk-[A-Za-z0-9_\-]{16,}",
    r"(?i:bearer)\s+[A-Za-z0-9_\-\.=:/+]{8,}",
    r"(?:AKIA|ASIA)[0-9A-Z]{16}",
    r"gh[pousr]_[A-Za-z0-9]{20,}",
    r"github_pat_[A-Za-z0-9_]{20,}",
    r"xox[abprs]-[A-Za-z0-9\-]{10,}",
    r"AIza[0-9A-Za-z_\-]{35}",
)
"""Regular expressions of known secret shapes."""

GENERATED_CHANNELS = frozenset({"clock", "random", "uuid", "sleep"})
"""Channels whose requests and responses the interceptors build themselves
(function names, numbers, uuids, random bytes): no secret can be in them, and
masking random bytes that happened to look like a key would corrupt a replay.
Redaction leaves them as they are."""

_DEFAULT_ANCHORS: tuple[str, ...] = (
    "sk-", "bearer", "akia", "asia", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
    "github_pat_", "xox", "aiza")
"""Lower-case literals, one of which every default pattern's match contains."""

_URL_PARAM = re.compile(r"([?&;])([^=&;#\s\"']+)=([^&;#\s\"']*)")
_URL_PARAM_B = re.compile(_URL_PARAM.pattern.encode())


@dataclasses.dataclass(frozen=True)
class Redactor:
    """Removes secrets from events. The default one is used unless turned off."""

    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    """Secret shapes to mask in every string, bytes value and stream."""
    headers: frozenset[str] = SENSITIVE_HEADERS
    """Header names (lower case) always redacted."""
    params: frozenset[str] = SENSITIVE_PARAMS
    """URL query parameters (lower case) always redacted."""
    callback: Callable[[Event], Event] | None = None
    """The user's last word: gets the redacted event, returns the one to write."""

    def __post_init__(self) -> None:
        text = "|".join(f"(?:{p})" for p in self.patterns)
        object.__setattr__(self, "_rx", re.compile(text))
        object.__setattr__(self, "_rxb", re.compile(text.encode()))
        # With the default patterns only, a text in which none of their literal
        # anchors appears (lower-cased) cannot match: skip the regex, which tries
        # every pattern at every byte. Any user pattern turns the shortcut off.
        anchors = _DEFAULT_ANCHORS if self.patterns == DEFAULT_PATTERNS else None
        object.__setattr__(self, "_anchors", anchors)
        object.__setattr__(self, "_anchors_b",
                           tuple(a.encode() for a in anchors) if anchors else None)

    def _may_match(self, s: str) -> bool:
        anchors: tuple[str, ...] | None = self._anchors  # type: ignore[attr-defined]
        if anchors is None:
            return True
        low = s.lower()
        return any(a in low for a in anchors)

    def _may_match_b(self, b: bytes) -> bool:
        anchors: tuple[bytes, ...] | None = self._anchors_b  # type: ignore[attr-defined]
        if anchors is None:
            return True
        low = b.lower()
        return any(a in low for a in anchors)

    @classmethod
    def with_patterns(cls, extra: Iterable[str] = (),
                      callback: Callable[[Event], Event] | None = None) -> Redactor:
        """The default redactor plus the user's patterns and callback."""
        return cls(patterns=DEFAULT_PATTERNS + tuple(extra), callback=callback)

    # -- values ----------------------------------------------------------------
    def text(self, s: str) -> str:
        """``s`` with secret shapes and key-bearing URL parameters masked."""
        out: str = (self._rx.sub(REDACTED, s)  # type: ignore[attr-defined]
                    if self._may_match(s) else s)
        if "=" in out and ("?" in out or "&" in out):
            out = _URL_PARAM.sub(self._param, out)
        return out

    def _param(self, m: re.Match[str]) -> str:
        if m.group(2).lower() in self.params and m.group(3):
            return f"{m.group(1)}{m.group(2)}={REDACTED}"
        return m.group(0)

    def data(self, b: bytes) -> bytes:
        """``b`` with secret shapes and key-bearing URL parameter values masked.

        Masks keep the length, so offsets, ``Content-Length`` and stream chunk
        boundaries hold.
        """
        rxb: re.Pattern[bytes] = self._rxb  # type: ignore[attr-defined]
        out = rxb.sub(lambda m: b"*" * len(m.group(0)), b) if self._may_match_b(b) else b
        if b"=" in out and (b"?" in out or b"&" in out):
            out = _URL_PARAM_B.sub(self._param_b, out)
        return out

    def _param_b(self, m: re.Match[bytes]) -> bytes:
        if m.group(2).decode("latin-1").lower() in self.params and m.group(3):
            return m.group(1) + m.group(2) + b"=" + b"*" * len(m.group(3))
        return m.group(0)

    def value(self, v: Any, key: str | None = None) -> Any:
        """Redact a JSON-like value; ``key`` is the map key it sits under.

        Returns ``v`` itself when nothing in it needed redacting, so the
        recorder's per-event path allocates nothing for clean events.
        """
        if key is not None and key.lower() in self.headers:
            if isinstance(v, str | bytes):
                return REDACTED if isinstance(v, str) else REDACTED.encode()
            if isinstance(v, list | tuple) and all(isinstance(x, str | bytes) for x in v):
                # vcrpy-style header maps: {"Set-Cookie": ["a=1", "b=2"]}
                many = [REDACTED if isinstance(x, str) else REDACTED.encode() for x in v]
                return tuple(many) if isinstance(v, tuple) else many
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, bytes):
            return self.data(v)
        if isinstance(v, dict):
            out: dict[Any, Any] | None = None
            for k, x in v.items():
                y = self.value(x, k if isinstance(k, str) else None)
                if y is not x and y != x:
                    if out is None:
                        out = dict(v)
                    out[k] = y
            return v if out is None else out
        if isinstance(v, list | tuple):
            if (len(v) == 2 and isinstance(v[0], str | bytes)
                    and _lower(v[0]) in self.headers and isinstance(v[1], str | bytes)):
                masked: Any = REDACTED if isinstance(v[1], str) else REDACTED.encode()
                pair = [v[0], masked]
                return tuple(pair) if isinstance(v, tuple) else pair
            items: list[Any] | None = None
            for i, x in enumerate(v):
                y = self.value(x)
                if y is not x and y != x:
                    if items is None:
                        items = list(v)
                    items[i] = y
            if items is None:
                return v
            return tuple(items) if isinstance(v, tuple) else items
        return v

    def chunks(self, chunks: tuple[Chunk, ...]) -> tuple[Chunk, ...]:
        """Mask secrets across chunk boundaries, keeping every chunk's size."""
        if not chunks:
            return chunks
        joined = self.data(b"".join(c.data for c in chunks))
        out, pos = [], 0
        for c in chunks:
            out.append(Chunk(joined[pos:pos + len(c.data)], c.at_ns))
            pos += len(c.data)
        return tuple(out)

    def __call__(self, event: Event) -> Event:
        """The event as it may be written to disk (the same object when clean)."""
        if event.channel in GENERATED_CHANNELS and event.error is None:
            return self.callback(event) if self.callback is not None else event
        changes: dict[str, Any] = {}
        for name in ("request", "response"):
            old = getattr(event, name)
            new = self.value(old)
            if new is not old:
                changes[name] = new
        error = event.error
        if error is not None:
            red = RecordedError(error.type, self.text(error.message),
                                self.text(error.traceback),
                                tuple(self.value(a) for a in error.args))
            if red != error:
                changes["error"] = red
        if event.chunks:
            chunks = self.chunks(event.chunks)
            if chunks != event.chunks:
                changes["chunks"] = chunks
        if event.meta:
            meta = self.value(dict(event.meta))
            if meta != event.meta:
                changes["meta"] = meta
        out = dataclasses.replace(event, **changes) if changes else event
        return self.callback(out) if self.callback is not None else out


def _lower(x: str | bytes) -> str:
    return (x.decode("latin-1") if isinstance(x, bytes) else x).lower()


def redact_value(v: Value, redactor: Redactor | None = None) -> Value:
    """Redact one value with ``redactor`` (default: the default one)."""
    return (redactor or DEFAULT)(Event(0, "x", v)).request


DEFAULT = Redactor()
"""The redactor used when none is given."""
