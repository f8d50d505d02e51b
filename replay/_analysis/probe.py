"""Drift's live side: a replay that never stops at a changed request, and safe probes.

:class:`DriftMatcher` replaces a replay session's matcher when ``Run.options``
holds ``"drift"`` (a session hook registered here does it, in process or in the
child of ``replay drift -- COMMAND``). It answers every request with the
recorded event at the same position of the same logical task and channel, even
when the request changed, and notes what changed. Only a call on another
channel than the recording's next one stops the run (there is no answer for it).

Probes re-run live only what is safe: tools registered with ``safe=True`` in
this process (never any other tool), and HTTP ``GET``/``HEAD`` requests to
allow-listed hosts; with ``models=True`` also one recorded model call per
model and endpoint, to see which model the provider serves now.
"""

from __future__ import annotations

import atexit
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgpack

from replay._analysis.usage import model_call
from replay._analysis.wire import api_of, response_body
from replay._capture.matcher import Matcher, is_matchable
from replay._capture.session import SESSION_HOOKS, RunSettings
from replay._capture.tools import ToolInfo, registered_tools
from replay._capture.values import canonical
from replay._cassette.divergence import Divergence
from replay._cassette.events import CallSite, Chunk, Event, Value
from replay._cassette.redact import REDACTED

if TYPE_CHECKING:
    from replay._capture.session import Session

_HOP = frozenset({"host", "content-length", "connection", "transfer-encoding", "keep-alive",
                  "accept-encoding", "x-stainless-retry-count", "x-stainless-read-timeout"})


@dataclass(frozen=True, slots=True)
class Observation:
    """What the drift replay saw the code ask, where it differs from the recording."""

    kind: str
    """``changed``: the recorded answer served to a different request; else the
    grade of the divergence that stopped the run (``extra``: no recorded event of
    that channel next; ``missing``/``swapped``: recorded calls skipped)."""
    seq: int | None
    """The recorded event served (``changed``) or due next (a divergence)."""
    channel: str
    """Channel of the live request."""
    task: str
    """Logical task that asked."""
    request: Value
    """The live request."""


def same_request(channel: str, recorded: Value, live: Value) -> bool:
    """Equal for drift: HTTP by method, URL and body (headers are display-only)."""
    if channel.startswith("http") and isinstance(recorded, dict) and isinstance(live, dict):
        return all(recorded.get(k) == live.get(k) for k in ("method", "url", "body"))
    return bool(recorded == live)


def _any(recorded: Value, actual: Value) -> bool:
    return True


class DriftMatcher(Matcher):
    """Lenient replay: the recorded answer at each position, whatever was asked.

    A :class:`Matcher` whose request comparison accepts any request on the
    channel the recording has next (so the head of the task's queue answers),
    and which notes every request that differs from the event that answered it.
    """

    def __init__(self, events: Iterable[Event]) -> None:
        events = tuple(events)
        super().__init__(events)
        super().set_matcher("", _any)
        self.recorded = tuple(sorted((e for e in events if is_matchable(e)),
                                     key=lambda e: e.seq))
        """The recorded events it answers from, in order."""
        self._notes = threading.Lock()
        self.observations: list[Observation] = []
        """Every difference seen, in order."""

    def set_matcher(self, channel_prefix: str, fn: Any) -> None:
        """Ignored: drift compares requests itself and never refuses one."""

    def match(self, task: str, channel: str, request: Value,
              site: CallSite | None) -> Event | Divergence | None:
        """The recorded event due next for ``task`` on ``channel``, noting any change."""
        found = super().match(task, channel, request, site)
        if isinstance(found, Event):
            if not same_request(channel, found.request, request):
                self._note(Observation("changed", found.seq, channel, task, request))
        elif isinstance(found, Divergence):
            self._note(Observation(found.grade.value, found.seq, channel, task, request))
        return found

    def _note(self, observation: Observation) -> None:
        with self._notes:
            self.observations.append(observation)


class DriftHolder:
    """In-process handle: ``Run.options["drift"] = holder`` gets the matcher back."""

    def __init__(self) -> None:
        self.matcher: DriftMatcher | None = None


def _hook(session: Session, run: RunSettings) -> None:
    target = run.options.get("drift")
    if target is None or session.matcher is None:
        return
    from replay._cassette import read_cassette
    matcher = DriftMatcher(read_cassette(run.path, strict=not run.allow_damaged).events)
    session.matcher = matcher
    if isinstance(target, DriftHolder):
        target.matcher = matcher
    elif isinstance(target, str):  # the child of ``replay drift -- COMMAND``
        atexit.register(_dump, matcher, target, bool(run.options.get("probe")))


if _hook not in SESSION_HOOKS:
    SESSION_HOOKS.append(_hook)


def _dump(matcher: DriftMatcher, path: str, probe: bool) -> None:
    """Child side: write what the drift replay saw (runs after the run has stopped)."""
    doc: dict[str, Any] = {
        "observations": [[o.kind, o.seq, o.channel, o.task, o.request]
                         for o in matcher.observations],
        "unconsumed": [ev.seq for ev in matcher.unconsumed()],
        "probes": [],
    }
    if probe:  # the tools are registered now: the program has imported them
        doc["probes"] = [[p.seq, p.channel, p.kind, p.recorded, p.live, p.error]
                         for p in probe_tools(matcher.recorded)]
    with open(path, "wb") as f:
        f.write(msgpack.packb(doc, use_bin_type=True, default=str))


def load_dump(path: str) -> tuple[list[Observation], list[int], list[ProbeResult]]:
    """Parent side: read what the child wrote (observations, unconsumed seqs, probes)."""
    with open(path, "rb") as f:
        doc = msgpack.unpackb(f.read(), raw=False, strict_map_key=False)
    obs = [Observation(str(k), s, str(c), str(t), r) for k, s, c, t, r in doc["observations"]]
    probes = [ProbeResult(s, str(c), str(k), rec, live, err)
              for s, c, k, rec, live, err in doc.get("probes", [])]
    return obs, [int(s) for s in doc["unconsumed"]], probes


# -- probes ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One recorded call made again live."""

    seq: int
    """The recorded event."""
    channel: str
    """Its channel."""
    kind: str
    """``tool``, ``http`` or ``model``."""
    recorded: Value
    """What was recorded (tool result; HTTP ``{"status", "body"}``; model ``{"model",
    "system_fingerprint"}``)."""
    live: Value
    """The same, live now (None when the probe failed)."""
    error: str | None = None
    """Why the live call failed (``Type: message``), or None."""


def _call_tool(info: ToolInfo, request: Value) -> Any:
    args = request.get("args") if isinstance(request, dict) else None
    if isinstance(args, dict) and set(args) <= {"*", "**"} and args:
        pos, kw = args.get("*") or [], args.get("**") or {}
        return info.func(*(pos if isinstance(pos, list) else []),
                         **(kw if isinstance(kw, dict) else {}))
    return info.func(**(args if isinstance(args, dict) else {}))


def _recorded_outcome(ev: Event) -> Value:
    if ev.error is not None:
        return {"raised": ev.error.type.rsplit(".", 1)[-1], "message": ev.error.message}
    return ev.response


def probe_tools(events: Iterable[Event], tools: Mapping[str, ToolInfo] | None = None
                ) -> list[ProbeResult]:
    """Run again every recorded call of a tool registered here with ``safe=True``.

    Tools not registered in this process, or not safe, are never run. Calls with
    equal arguments are run once.
    """
    tools = registered_tools() if tools is None else tools
    out: list[ProbeResult] = []
    done: dict[tuple[str, str], tuple[Value, str | None]] = {}
    for ev in sorted(events, key=lambda e: e.seq):
        info = tools.get(ev.channel)
        if info is None or not info.safe or REDACTED in repr(ev.request):
            continue
        key = (ev.channel, json.dumps(canonical(ev.request), sort_keys=True, default=str))
        if key not in done:
            try:
                done[key] = (canonical(_call_tool(info, ev.request)), None)
            except Exception as exc:
                done[key] = ({"raised": type(exc).__name__, "message": str(exc)}, None)
        live, err = done[key]
        out.append(ProbeResult(ev.seq, ev.channel, "tool", _recorded_outcome(ev), live, err))
    return out


def _host_allowed(url: str, allow: frozenset[str]) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return host in allow or (parts.port is not None and f"{host}:{parts.port}" in allow)


def _send_headers(request: Mapping[str, Value]) -> dict[str, str]:
    raw = request.get("headers")
    out: dict[str, str] = {}
    if isinstance(raw, dict):
        for k, v in raw.items():
            text = v.decode("latin-1") if isinstance(v, bytes) else str(v)
            if k.lower() not in _HOP and REDACTED not in text:
                out[k] = text
    return out


def _body_bytes(body: Value) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def _http_outcome(status: Value, body: Value) -> dict[str, Value]:
    from replay._analysis.wire import as_json
    parsed = as_json(body)
    return {"status": status, "body": parsed if parsed is not None else body}


def probe_http(events: Iterable[Event], allow_hosts: Iterable[str], *, models: bool = False,
               timeout: float = 10.0) -> list[ProbeResult]:
    """Repeat recorded ``GET``/``HEAD`` requests to allow-listed hosts (and, with
    ``models``, one recorded model call per model and endpoint) and report both answers.

    Redacted headers are not sent. Nothing is sent to a host not in ``allow_hosts``.
    """
    import httpx
    allow = frozenset(h.strip().lower() for h in allow_hosts if h.strip())
    if not allow:
        return []
    out: list[ProbeResult] = []
    seen: set[str] = set()
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        for ev in sorted(events, key=lambda e: e.seq):
            req = ev.request
            if not ev.channel.startswith("http") or not isinstance(req, dict):
                continue
            method, url = str(req.get("method", "")).upper(), req.get("url")
            if not isinstance(url, str) or not _host_allowed(url, allow):
                continue
            call = model_call(ev) if models and api_of(req) is not None else None
            if method not in ("GET", "HEAD") and call is None:
                continue
            key = f"{method} {url} {call.model if call else req.get('body')!r}"
            if key in seen:
                continue
            seen.add(key)
            out.append(_probe_one(client, ev, method, url, call is not None))
    return out


def _probe_one(client: Any, ev: Event, method: str, url: str, is_model: bool) -> ProbeResult:
    req = ev.request
    assert isinstance(req, dict)
    resp = ev.response if isinstance(ev.response, dict) else {}
    kind = "model" if is_model else "http"
    if is_model:
        call = model_call(ev)
        recorded: Value = {"status": resp.get("status"), "model": call.served_model if call
                           else None,
                           "system_fingerprint": call.system_fingerprint if call else None}
    else:
        recorded = _http_outcome(resp.get("status"), response_body(ev))
    try:
        live = client.request(method, url, headers=_send_headers(req),
                              content=_body_bytes(req.get("body")))
    except Exception as exc:
        return ProbeResult(ev.seq, ev.channel, kind, recorded, None,
                           f"{type(exc).__name__}: {exc}")
    if is_model:
        fake = Event(ev.seq, ev.channel, req, {"status": live.status_code,
                     "headers": [[k, v] for k, v in live.headers.items()]},
                     chunks=(Chunk(live.content, 0),))
        now = model_call(fake)
        live_value: Value = {"status": live.status_code,
                             "model": now.served_model if now else None,
                             "system_fingerprint": now.system_fingerprint if now else None}
    else:
        live_value = _http_outcome(live.status_code, live.content)
    return ProbeResult(ev.seq, ev.channel, kind, recorded, live_value)
