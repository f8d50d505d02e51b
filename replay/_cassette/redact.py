"""Secrets never reach the disk: redaction applied to every event before it is written.

The cassette writer calls a :class:`Redactor` on each event (record, append,
re-record, edit and import all go through the writer), and every layer that
makes a cassette header passes it through ``redacted.header_for`` (argv and
metadata), so there is one place where secrets are removed, before
compression. By default it removes (the rules are in ``secret_rules``):

* values of sensitive headers, in any letter case, wherever a header map or
  ``[name, value]`` header list appears: ``Authorization``, ``Cookie``,
  ``x-api-key``, ``x-goog-api-key`` and any header whose name says it holds a
  secret (``X-Custom-Auth-Token``);
* values of map keys whose name says so (``password``, ``client_secret``,
  ``apiKey``, ``access_token``...), never ``max_tokens``, ``usage`` or ids;
* map keys that are secrets themselves (``{KEY: 1}``);
* in every string and bytes value: known key shapes (OpenAI, Anthropic,
  Stripe, AWS access keys and the secret beside them, GitHub, GitLab, Slack,
  Google, Hugging Face, JWTs, PEM private keys, ...), the value after a
  sensitive name (``"password": "..."``, ``client_secret=...``), key-bearing
  URL query parameters and the password in ``https://user:password@host``;
* the same in the header's argv (``--api-key VALUE`` too) and metadata;
* plus the user's own patterns and callback.

Streamed chunks are redacted across chunk boundaries (a key split over two
SSE chunks is still found) with a same-length mask, so chunk boundaries and
sizes replay exactly. Matching ignores redacted values (see ``REDACTED``).
Every human-facing output (show, diff, edit, divergence reports, the TUI)
shows values through the default redactor too (``redacted.shown``,
:meth:`Redactor.change`), whatever the cassette was written with.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgpack

from replay._cassette.events import Chunk, Event, RecordedError, Value
from replay._cassette.secret_rules import (
    SHAPE_BY_PATTERN,
    SHAPES,
    Finder,
    Span,
    is_masked,
    sensitive_name,
)
from replay._cassette.structdiff import Change

REDACTED = "[REDACTED]"
"""What a redacted string value becomes."""

SENSITIVE_HEADERS = frozenset({
    "authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie",
    "x-auth-token", "x-goog-api-key", "openai-organization-key", "x-amz-security-token",
})
"""Header names (lower case) whose values are always removed (besides any name
:func:`~replay._cassette.secret_rules.sensitive_name` accepts)."""

SENSITIVE_PARAMS = frozenset({
    "api_key", "apikey", "api-key", "key", "token", "access_token", "refresh_token",
    "id_token", "client_secret", "secret", "password", "sig", "signature", "auth",
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "code",
})
"""Query parameter names (lower case) whose values are removed from URLs."""

DEFAULT_PATTERNS: tuple[str, ...] = tuple(s.pattern for s in SHAPES)
"""Regular expressions of known secret shapes (``secret_rules.SHAPES`` has their labels)."""

GENERATED_CHANNELS = frozenset({"clock", "random", "uuid", "sleep"})
"""Channels whose requests and responses the interceptors build themselves
(function names, numbers, uuids, random bytes): no secret can be in them, and
masking random bytes that happened to look like a key would corrupt a replay.
Redaction leaves them as they are."""

RULES_MARK = "redaction"
"""Header metadata key: the :data:`RULES_VERSION` a cassette was redacted with."""
RULES_VERSION = 2
"""Bumped when the default rules find more; a cassette marked with the current
version needs no second pass before it is shown."""

_MIN_SECRET = 6  # no default rule matches a shorter text ("auth=x")
_CACHED = 160  # texts up to this long are remembered with their redaction
_SAME = "\0same"  # the cached redaction of a clean text: itself
_packb = msgpack.packb  # thread-safe (a packer per call): redaction runs outside any lock
_LEAVES = frozenset({str, bytes, int, float, bool, type(None)})  # what clean() need not walk
_FLAG = re.compile(r"-{1,2}[A-Za-z][A-Za-z0-9_.\-]*")
_LAST_PART = re.compile(r"([A-Za-z0-9_\-]+)['\"]?\]?$")  # "body.password", "h['x-api-key']"


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
    names: Callable[[str], bool] | None = sensitive_name
    """Which field, header and flag names hold secrets; None: only ``headers``."""

    def __post_init__(self) -> None:
        known = [SHAPE_BY_PATTERN[p] for p in self.patterns if p in SHAPE_BY_PATTERN]
        extra = [p for p in self.patterns if p not in SHAPE_BY_PATTERN]
        object.__setattr__(self, "finder", Finder(known, extra, names=self.names,
                                                  params=self.params))
        # a text shorter than every default rule's shortest match cannot hold one
        object.__setattr__(self, "_short", 0 if extra else _MIN_SECRET)
        object.__setattr__(self, "_keys", {})
        object.__setattr__(self, "_texts", {})
        object.__setattr__(self, "_clear", set())  # str keys whose _key() is (False, False)
        compiled = self.finder._bytes  # the same rules, compiled for bytes
        object.__setattr__(self, "_scan", None if extra or compiled.quick is None else
                           compiled.quick.find_matches_as_indexes)
        object.__setattr__(self, "_pairs", tuple(compiled.pairs))

    finder: Finder = dataclasses.field(init=False, repr=False, compare=False)
    """The compiled rules (shared with ``replay scan``)."""

    @classmethod
    def with_patterns(cls, extra: Iterable[str] = (),
                      callback: Callable[[Event], Event] | None = None) -> Redactor:
        """The default redactor plus the user's patterns and callback."""
        return cls(patterns=DEFAULT_PATTERNS + tuple(extra), callback=callback)

    @property
    def covers_defaults(self) -> bool:
        """True when this redactor removes at least what the default one removes."""
        return (self.patterns[:len(DEFAULT_PATTERNS)] == DEFAULT_PATTERNS
                and self.headers >= SENSITIVE_HEADERS and self.params >= SENSITIVE_PARAMS
                and self.names is sensitive_name)

    # -- values ----------------------------------------------------------------
    def find(self, s: str | bytes) -> list[Span]:
        """Where the secrets in ``s`` are: ``(start, end, label)``, in order."""
        if len(s) < self._short:  # type: ignore[attr-defined]
            return []
        return self.finder.find(s)

    def text(self, s: str) -> str:
        """``s`` with every secret in it replaced by ``[REDACTED]``."""
        short = len(s) <= _CACHED
        if short:  # names, methods, header values: the same few strings in every event
            texts: dict[str, str] = self._texts  # type: ignore[attr-defined]
            hit = texts.get(s)
            if hit is not None:
                return s if hit is _SAME else hit
        spans = self.find(s)
        out = s
        if spans:
            parts: list[str] = []
            pos = 0
            for a, b, _ in spans:
                parts += (s[pos:a], REDACTED)
                pos = b
            parts.append(s[pos:])
            out = "".join(parts)
        if short:
            if len(texts) > 8192:
                texts.clear()
            texts[s] = _SAME if out is s else out
        return out

    def data(self, b: bytes) -> bytes:
        """``b`` with every secret masked by ``*`` of the same length.

        Masks keep the length, so offsets, ``Content-Length`` and stream chunk
        boundaries hold.
        """
        spans = self.find(b)
        if not spans:
            return b
        out = bytearray(b)
        for x, y, _ in spans:
            out[x:y] = b"*" * (y - x)
        return bytes(out)

    def sensitive_key(self, name: str) -> bool:
        """True when a map key or header called ``name`` holds a secret."""
        return self._key(name)[0]

    def header_pair(self, v: Any) -> bool:
        """True for a ``[name, value]`` header pair whose value is a secret: a sensitive
        header, or a sensitive name of several words (``X-Custom-Auth-Token``), so that
        a two-word list such as ``["secret", "sauce"]`` is left alone."""
        if not (len(v) == 2 and isinstance(v[0], str | bytes) and isinstance(v[1], str | bytes)):
            return False
        name = _str(v[0])
        return name.lower() in self.headers or (
            ("-" in name or "_" in name) and self._key(name)[0])

    def _key(self, name: str) -> tuple[bool, bool]:
        """(its value is a secret, it is a secret itself) for a map key; cached,
        since the same keys come back in every event."""
        keys: dict[str, tuple[bool, bool]] = self._keys  # type: ignore[attr-defined]
        hit = keys.get(name)
        if hit is None:
            hit = (name.lower() in self.headers or (self.names is not None and self.names(name)),
                   bool(self.find(name)))
            if len(keys) > 4096:
                keys.clear()
            keys[name] = hit
        return hit

    def value(self, v: Any, key: str | None = None) -> Any:
        """Redact a JSON-like value; ``key`` is the map key it sits under.

        Returns ``v`` itself when nothing in it needed redacting, so the
        recorder's per-event path allocates nothing for clean events.
        """
        if key is not None and self._key(key)[0]:
            return self._under(v)
        t = type(v)
        if t is int or t is float or t is bool or v is None:  # most leaves: nothing to do
            return v
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return self._map(v)
        if isinstance(v, list | tuple):
            if len(v) == 2 and self.header_pair(v):
                pair = [self.value(v[0]), _mask(v[1])]
                return tuple(pair) if isinstance(v, tuple) else pair
            items: list[Any] | None = None
            texts: dict[str, str] = self._texts  # type: ignore[attr-defined]
            for i, x in enumerate(v):
                if type(x) is str:  # inline cache hit of text(): list items are mostly text
                    hit = texts.get(x)
                    y = x if hit is _SAME else hit if hit is not None else self.text(x)
                else:
                    y = self.value(x)
                if y is not x and y != x:
                    if items is None:
                        items = list(v)
                    items[i] = y
            if items is None:
                return v
            return tuple(items) if isinstance(v, tuple) else items
        if isinstance(v, bytes):
            return self.data(v)
        return v

    def clean(self, packed: bytes, *values: Any, scanned: bool = False) -> bool:
        """True when :meth:`value` would leave each of ``values`` as it is (False: it
        may not; ask it). ``packed`` is their msgpack encoding (or any bytes holding
        every str and bytes in them verbatim, as msgpack writes them).

        One anchor scan of ``packed`` stands for the secret scan of every string
        in them (a string with no anchor, and no ``=`` beside a ``?``, ``&`` or
        ``;``, holds no secret; the scan looks for the 3-byte ``Shape.wide``
        literals in place of 2-byte anchors, and for ``//`` only beside an ``@``:
        ``_Compiled.quick``); a walk over the containers checks the map keys and
        ``[name, value]`` pairs by their cached verdicts. For the recorder's
        per-event path (a tool call); redactors with extra patterns answer False.
        """
        if not (scanned or self.quiet(packed)):  # scanned: the caller had quiet() say yes
            return False
        clear: set[str] = self._clear  # type: ignore[attr-defined]
        for v in values:  # _plain, inlined two maps deep (a tool's {"args": {...}})
            t = type(v)
            if t in _LEAVES:
                continue
            if t is dict and clear.issuperset(v):
                if _LEAVES.issuperset(map(type, v.values())):  # a flat map: one C-level check
                    continue
                for x in v.values():
                    tx = type(x)
                    if tx in _LEAVES or (tx is dict and clear.issuperset(x)
                                         and _LEAVES.issuperset(map(type, x.values()))):
                        continue
                    if not self._plain(x):
                        return False
            elif not self._plain(v):
                return False
        return True

    def quiet(self, packed: bytes) -> bool:
        """True when no string held verbatim in ``packed`` can hold a secret by the
        rules (:meth:`clean`'s scan; False: maybe). None can with user patterns."""
        scan = self._scan  # type: ignore[attr-defined]
        if scan is None or scan(packed):
            return False
        find = packed.find  # not `in`: bytes.__contains__ tries an int first (an error made)
        if find(b"=") >= 0 and (find(b"?") >= 0 or find(b"&") >= 0 or find(b";") >= 0):
            return False
        for also, anchor in self._pairs:  # type: ignore[attr-defined]  # noqa: SIM110
            if find(also) >= 0 and find(anchor) >= 0:
                return False
        return True

    def _plain(self, v: Any) -> bool:
        """No map key or header pair inside ``v`` (a dict, list or tuple) asks for
        redaction, and nothing in it is of a type :meth:`value` treats otherwise.
        The usual map (keys seen before, leaves for values) takes two C-level set
        checks, no Python loop."""
        t = type(v)
        if t is dict:
            clear: set[str] = self._clear  # type: ignore[attr-defined]
            if not clear.issuperset(v):
                for k in v:
                    if k not in clear:
                        if type(k) is not str or self._key(k) != (False, False):
                            return False
                        if len(clear) > 4096:
                            clear.clear()
                        clear.add(k)
            items = v.values()
        elif t is list or t is tuple:
            if len(v) == 2 and self.header_pair(v):
                return False
            items = v
        else:
            return False
        if _LEAVES.issuperset(map(type, items)):
            return True
        for x in items:  # noqa: SIM110  (as in clean)
            if type(x) not in _LEAVES and not self._plain(x):
                return False
        return True

    def _under(self, v: Any) -> Any:
        """A value under a sensitive name: masked when it is text (or a list of texts,
        like vcrpy's ``{"Set-Cookie": ["a=1", "b=2"]}``), else walked."""
        if isinstance(v, str | bytes):
            return _mask(v)
        if isinstance(v, list | tuple) and v and all(isinstance(x, str | bytes) for x in v):
            many = [_mask(x) for x in v]
            return tuple(many) if isinstance(v, tuple) else many
        return self.value(v)

    def _map(self, v: dict[Any, Any]) -> dict[Any, Any]:
        changed: dict[Any, Any] | None = None
        renamed = False
        keys: dict[str, tuple[bool, bool]] = self._keys  # type: ignore[attr-defined]
        texts: dict[str, str] = self._texts  # type: ignore[attr-defined]
        for k, x in v.items():
            if type(k) is str:  # the same keys in every event: their verdict is cached
                sensitive, secret = keys.get(k) or self._key(k)
                renamed = renamed or secret  # a secret used as a key: {KEY: 1}
                if sensitive:
                    y = self._under(x)
                elif type(x) is str:  # inline cache hit of text()
                    hit = texts.get(x)
                    y = x if hit is _SAME else hit if hit is not None else self.text(x)
                else:
                    y = self.value(x)
            elif isinstance(k, str):
                sensitive, secret = self._key(k)
                renamed = renamed or secret
                y = self._under(x) if sensitive else self.value(x)
            elif isinstance(k, bytes):
                renamed = renamed or self.data(k) != k
                y = self.value(x, _str(k))
            else:
                y = self.value(x)
            if y is not x and y != x:
                if changed is None:
                    changed = {}
                changed[k] = y
        if changed is None and not renamed:
            return v
        out: dict[Any, Any] = {}
        for k, x in v.items():
            y = changed.get(k, x) if changed else x
            if renamed and isinstance(k, str | bytes):
                k = self.text(k) if isinstance(k, str) else self.data(k)
                n = 1
                while k in out:  # two secrets masked alike stay two keys
                    n += 1
                    k = f"{REDACTED}#{n}" if isinstance(k, str) else b"%s#%d" % (k, n)
            out[k] = y
        return out

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

    def secret_flag(self, arg: str) -> bool:
        """True for a command-line flag whose value is a secret (``--api-key``)."""
        return _FLAG.fullmatch(arg) is not None and self.sensitive_key(arg.lstrip("-"))

    def argv(self, argv: Iterable[str]) -> tuple[str, ...]:
        """A command line with secrets masked, and the value after a flag such as
        ``--api-key`` or ``--password`` too."""
        out: list[str] = []
        secret_next = False
        for arg in argv:
            if secret_next and not arg.startswith("-"):
                out.append(_mask(arg))  # type: ignore[arg-type]
                secret_next = False
                continue
            secret_next = self.secret_flag(arg)
            out.append(self.text(arg))
        return tuple(out)

    def __call__(self, event: Event) -> Event:
        """The event as it may be written to disk (the same object when clean)."""
        if (event.channel in GENERATED_CHANNELS and event.error is None) or (
                event.channel == "http" and self._http_clean(event)):
            return self.callback(event) if self.callback is not None else event
        changes: dict[str, Any] = {}
        for name in ("request", "response"):
            old = getattr(event, name)
            new = self.value(old)
            if new is not old:
                changes[name] = new
        error = event.error
        if error is not None:
            red = RecordedError(self.text(error.type), self.text(error.message),
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

    def _http_clean(self, event: Event) -> bool:
        """True when redaction would leave this ``http`` event as it is (False: it may
        not). One :meth:`clean` of the request, response, meta and the whole body
        (its chunks joined, as :meth:`chunks` scans them), the URL aside: its ``//``
        is an anchor of every scan, and its verdict is cached (:meth:`text`)."""
        req = event.request
        if event.error is not None or type(req) is not dict:
            return False
        url = req.get("url")
        if type(url) is not str or self.text(url) is not url:
            return False
        chunks = event.chunks
        body = chunks[0].data if len(chunks) == 1 else b"".join(c.data for c in chunks)
        probe = {**req, "url": None}
        try:
            packed = _packb([probe, event.response, event.meta, body])
        except (TypeError, ValueError, OverflowError):  # not plain data: the full walk
            return False
        return self.clean(packed, probe, event.response, event.meta)

    # -- headers and reports ------------------------------------------------------
    def meta(self, meta: Mapping[str, Value]) -> dict[str, Value]:
        """Header metadata as it may be written: redacted, and marked with
        :data:`RULES_VERSION` when this redactor covers the defaults."""
        out: dict[str, Value] = self.value({k: v for k, v in meta.items() if k != RULES_MARK})
        if self.covers_defaults:
            out[RULES_MARK] = RULES_VERSION
        return out

    def applied(self, meta: Mapping[str, Value]) -> bool:
        """True when a cassette with this header metadata was written under the
        current default rules and this redactor would remove nothing more."""
        return (meta.get(RULES_MARK) == RULES_VERSION and self.covers_defaults
                and self.callback is None and len(self.patterns) == len(DEFAULT_PATTERNS))

    def change(self, change: Change) -> Change:
        """A structural change as it may be shown (both sides redacted; a field
        named like a secret masked whole)."""
        name = _LAST_PART.search(change.path)
        key = name.group(1) if name is not None else None
        old, new = self.value(change.old, key), self.value(change.new, key)
        if old is change.old and new is change.new:
            return change
        return Change(change.path, change.kind, old, new)


def _mask(x: str | bytes) -> str | bytes:
    if not x or is_masked(x):
        return x
    return REDACTED if isinstance(x, str) else REDACTED.encode()


def _str(x: str | bytes) -> str:
    return x.decode("latin-1") if isinstance(x, bytes) else x


def redact_value(v: Value, redactor: Redactor | None = None) -> Value:
    """Redact one value with ``redactor`` (default: the default one)."""
    return (redactor or DEFAULT)(Event(0, "x", v)).request


DEFAULT = Redactor()
"""The redactor used when none is given."""
