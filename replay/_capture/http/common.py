"""Canonical HTTP requests and responses, request matching, replay settings.

Every HTTP interceptor (httpx, httpx2, the vcrpy-based ones) writes the same
``http`` event, so a cassette holds one global order of HTTP calls whatever
library made them, and any of them can answer a request recorded by another:

    request   {"method": "POST", "url": CANONICAL_URL, "body": BODY,
               "headers": {lower-case name: value}}          (headers: display only)
    response  {"status": 200, "reason": "OK", "http_version": "HTTP/1.1",
               "headers": [[name, value], ...]}              (as received, in order)
    chunks    the body, one Chunk per piece as it reached the caller
    meta      {"client": "httpx2", "head_ns": ns until the headers arrived,
               "stream": "closed-early" | "left-open" | "error" (absent when read
               to the end; left-open: neither read to the end nor closed when
               the run stopped),
               "decoded": "gzip" (the body is stored decoded; see docs/http.md)}

The canonical URL has a lower-case scheme and host, no default port, no user
info or fragment, and its query parameters sorted (their encoding untouched).
A JSON body is parsed with its keys sorted (one stored form for the same
content, and key order never decides a match); any other body is kept as
bytes.
"""

from __future__ import annotations

import json
import operator
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from replay._capture.session import Pending, Session
from replay._cassette.divergence import Divergence, Grade
from replay._cassette.errors import DivergenceError
from replay._cassette.events import Event, Value

CHANNEL = "http"
"""The channel of every HTTP event."""

MATCH_FIELDS = ("method", "url", "body", "headers", "host", "path", "query")
"""Names ``match_on`` accepts."""
DEFAULT_MATCH_ON = ("method", "url", "body")
"""What decides that a live request is a recorded one."""

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_HIDDEN_HEADERS = frozenset({"host", "content-length", "connection", "accept-encoding",
                             "transfer-encoding", "keep-alive"})

Pairs = list[list[str]]
"""Headers as ``[[name, value], ...]`` in the order received."""


# -- canonical forms -------------------------------------------------------------
def canonical_url(url: str) -> str:
    """``url`` in the form used for matching (see the module docstring)."""
    out = _URLS.get(url)
    if out is None:  # an agent calls the same few URLs again and again
        out = _canonical_url(url)
        if len(_URLS) >= _KEPT:
            _URLS.clear()
        _URLS[url] = out
    return out


def _canonical_url(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None or _DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
    out = f"{scheme}://{netloc}{parts.path or '/'}"
    if parts.query:
        out += "?" + "&".join(sorted(parts.query.split("&")))
    return out


_KEPT = 512
"""Entries kept by each cache of canonical forms (URLs, request header lists) before
it starts over: a run calls a few endpoints with a few header sets."""
_URLS: dict[str, str] = {}


def canonical_body(content: Any, content_type: str | None = None) -> Value:
    """A request body for matching: parsed JSON (keys sorted), else bytes, else None."""
    if type(content) is bytes and content[:1] in _OPENERS and content[1:2] != b"\0":
        try:  # the common case, an SDK's JSON body: UTF-8 (json.detect_encoding's verdict)
            return _parse_json(content, "utf-8")
        except ValueError:
            return content  # what the general path below returns for it
    if content is None or content == b"" or content == "":
        return None
    if isinstance(content, dict | list):
        return _plain(content)
    if isinstance(content, str):
        content = content.encode("utf-8")
    if not isinstance(content, bytes | bytearray | memoryview):
        return repr(content)
    data = bytes(content)
    head = data.lstrip()[:1]
    if head in (b"{", b"[") or (content_type is not None and "json" in content_type.lower()):
        try:
            return _parse_json(data)
        except ValueError:
            pass
    return data


_OPENERS = (b"{", b"[")


def _parse_json(data: bytes, encoding: str | None = None) -> Value:
    """``json.loads(data, object_pairs_hook=_sorted_object, parse_constant=str)``, by a
    decoder made once (``json.loads`` with arguments builds a new one per call, half
    its cost on a chat request) and without the whitespace scans around a body that
    has none (``raw_decode``; anything else goes through ``decode``, which checks
    the rest)."""
    text = data.decode(encoding or _detect_encoding(data), "surrogatepass")
    try:
        parsed, end = _raw_decode(text)
    except ValueError:
        end = -1  # leading whitespace, or not JSON: decode parses it or says why
    if end != len(text):
        parsed = _decode(text)
    return parsed  # type: ignore[no-any-return]


def _sorted_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    pairs.sort(key=_first)  # stable: of a repeated key, the last value wins, as in dict()
    return dict(pairs)


_first = operator.itemgetter(0)
_DECODER = json.JSONDecoder(object_pairs_hook=_sorted_object, parse_constant=str)
_raw_decode, _decode = _DECODER.raw_decode, _DECODER.decode
_detect_encoding = json.detect_encoding


def _plain(v: Any) -> Value:
    if isinstance(v, dict):
        return {str(k): _plain(v[k]) for k in sorted(v, key=str)}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if v is None or isinstance(v, bool | int | float | str | bytes):
        return v
    return str(v)


def _text(x: str | bytes) -> str:
    return x.decode("latin-1") if isinstance(x, bytes) else x


def display_headers(pairs: Iterable[tuple[str | bytes, str | bytes]]) -> dict[str, Value]:
    """Request headers kept for people (never matched): lower-case names, sorted."""
    return dict(request_head(pairs)[0])


def request_head(pairs: Iterable[tuple[str | bytes, str | bytes]]) -> tuple[
        dict[str, Value], str | None]:
    """(:func:`display_headers` of ``pairs``, their ``Content-Type``), cached by the
    pairs: an SDK sends the same headers with every request. The map is shared by
    every caller with the same pairs: copy it before handing it on."""
    key = pairs if isinstance(pairs, tuple) else tuple(pairs)
    try:
        hit = _HEADS.get(key)
    except TypeError:  # a value that is not text: nothing to cache it by
        return _head(key)
    if hit is None:
        hit = _head(key)
        if len(_HEADS) >= _KEPT:
            _HEADS.clear()
        _HEADS[key] = hit
    return hit


def _head(pairs: Iterable[tuple[str | bytes, str | bytes]]) -> tuple[dict[str, Value],
                                                                     str | None]:
    out: dict[str, str] = {}
    for name, value in pairs:
        key = _text(name).lower()
        text = _text(value)
        out[key] = f"{out[key]}, {text}" if key in out else text
    ctype = out.get("content-type")  # as httpx's Headers.get gives it: repeats joined
    return {k: out[k] for k in sorted(out) if k not in _HIDDEN_HEADERS}, ctype


_HEADS: dict[tuple[tuple[str | bytes, str | bytes], ...],
             tuple[dict[str, Value], str | None]] = {}


def request_value(method: str, url: str, body: Value,
                  headers: Iterable[tuple[str | bytes, str | bytes]]) -> dict[str, Value]:
    """The canonical request of an ``http`` event."""
    return {"method": method.upper(), "url": canonical_url(url), "body": body,
            "headers": display_headers(headers)}


def header_pairs(pairs: Iterable[tuple[str | bytes, str | bytes]]) -> Pairs:
    """Response headers as stored: ``[[name, value], ...]``, names as received."""
    return [[n.decode("latin-1") if type(n) is bytes else _text(n),
             v.decode("latin-1") if type(v) is bytes else _text(v)] for n, v in pairs]


def response_value(status: int, reason: str, headers: Pairs,
                   http_version: str = "HTTP/1.1") -> dict[str, Value]:
    """The canonical response head of an ``http`` event (the body is in chunks)."""
    return {"status": status, "reason": reason, "http_version": http_version,
            "headers": headers}  # type: ignore[dict-item]


def header_get(headers: Value, name: str) -> str | None:
    """The first value of header ``name`` (any case) in a stored header list."""
    if not isinstance(headers, list):
        return None
    want = name.lower()
    for pair in headers:
        if isinstance(pair, list | tuple) and len(pair) == 2 and str(pair[0]).lower() == want:
            return str(pair[1])
    return None


def served_headers(response: Mapping[str, Value], meta: Mapping[str, Value]) -> list[
        tuple[str, str]]:
    """Headers to hand back on replay: a body stored decoded loses its encoding headers."""
    raw = response.get("headers")
    pairs = [(str(p[0]), str(p[1])) for p in raw if isinstance(p, list | tuple) and len(p) == 2
             ] if isinstance(raw, list) else []
    if meta.get("decoded"):
        drop = {"content-encoding", "content-length"}
        pairs = [p for p in pairs if p[0].lower() not in drop]
    return pairs


# -- matching --------------------------------------------------------------------
RequestMatcher = Callable[[Value, Value], bool]


def _field(request: Value, name: str) -> Value:
    if not isinstance(request, dict):
        return None
    if name in ("method", "url", "body", "headers"):
        return request.get(name)
    parts = urlsplit(str(request.get("url", "")))
    if name == "host":
        return parts.netloc
    if name == "path":
        return parts.path
    return parts.query  # "query": already sorted by canonical_url


def make_matcher(match_on: Sequence[str] | RequestMatcher | None) -> RequestMatcher:
    """A request matcher comparing the named fields, or the caller's own function."""
    if callable(match_on):
        return match_on
    names = tuple(match_on) if match_on else DEFAULT_MATCH_ON
    if isinstance(match_on, str):
        names = (match_on,)
    unknown = [n for n in names if n not in MATCH_FIELDS]
    if unknown:
        raise ValueError(f"unknown match_on field(s) {unknown}; use any of {MATCH_FIELDS}")

    def same(recorded: Value, actual: Value) -> bool:
        return all(_field(recorded, n) == _field(actual, n) for n in names)
    return same


# -- per-session settings --------------------------------------------------------
@dataclass(frozen=True)
class HttpConfig:
    """HTTP settings of one run, from ``Run.options``."""

    speed: float | None = None
    """Replay streams at the recorded pace times this factor; None: at once."""
    allow_hosts: frozenset[str] = field(default_factory=frozenset)
    """Hosts (``name``, ``ip``, ``name:port``) that strict replay may connect to."""

    def allows(self, host: str, port: int | None) -> bool:
        """Whether a real connection to ``host:port`` is allowed during replay."""
        h = host.lower().strip("[]")
        return h in self.allow_hosts or (port is not None and f"{h}:{port}" in self.allow_hosts)


def config_from_options(options: Mapping[str, Any]) -> HttpConfig:
    """Validate ``speed`` and ``allow_hosts`` from ``Run.options``."""
    speed = options.get("speed")
    if speed is not None:
        speed = float(speed)
        if not speed > 0:
            raise ValueError(f"speed must be > 0 (1.0 is the recorded pace), not {speed}")
    hosts: set[str] = set()
    for entry in options.get("allow_hosts") or ():
        hosts.update(_allow_entries(str(entry)))
    return HttpConfig(speed=speed, allow_hosts=frozenset(hosts))


def _allow_entries(entry: str) -> set[str]:
    entry = entry.strip().lower()
    host, port = entry, ""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest.lstrip(":")
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    out = {f"{host}:{port}" if port else host}
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return out
    for info in infos:
        ip = str(info[4][0])
        out.add(f"{ip}:{port}" if port else ip)
    return out


_CONFIGS: weakref.WeakKeyDictionary[Session, HttpConfig] = weakref.WeakKeyDictionary()
_CONFIGS_LOCK = threading.Lock()
_DEFAULT = HttpConfig()


def set_config(session: Session, config: HttpConfig) -> None:
    """Attach ``config`` to ``session``."""
    with _CONFIGS_LOCK:
        _CONFIGS[session] = config


def config_of(session: Session) -> HttpConfig:
    """The HTTP settings of ``session`` (defaults when none were given)."""
    return _CONFIGS.get(session, _DEFAULT)


# -- pacing ----------------------------------------------------------------------
class Pacer:
    """When to hand out recorded chunks: at once, or at the recorded pace / speed."""

    __slots__ = ("speed", "t0")

    def __init__(self, speed: float | None) -> None:
        self.speed = speed
        self.t0 = time.perf_counter_ns()

    def delay(self, at_ns: int) -> float:
        """Seconds to wait before something recorded ``at_ns`` after the start."""
        if self.speed is None:
            return 0.0
        due = self.t0 + at_ns / self.speed
        return max(0.0, (due - time.perf_counter_ns()) / 1e9)


def read_past(session: Session, pending: Pending, ev: Event,
              what: str = "stream") -> BaseException:
    """The divergence of a replayed caller reading past the recorded chunks of ``ev``,
    whose recorded caller closed its ``what`` early (the rest was never recorded)."""
    d = Divergence(Grade.CHANGED, CHANNEL, pending.task, ev,
                   {"read past": f"chunk {len(ev.chunks)}: the recorded caller closed "
                                 f"this {what} early, so the rest was never recorded"},
                   pending.site)
    session.divergences.append(d)
    return DivergenceError(d)
