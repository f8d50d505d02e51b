"""Payload views for comparing events: parsed bodies, headers without per-call noise, text diffs."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from replay._analysis.usage import ModelCall
from replay._analysis.wire import as_json, response_body, stream_of
from replay._cassette.events import Event, Value

VOLATILE_HEADERS = frozenset({
    "date", "age", "expires", "last-modified", "etag", "x-request-id", "request-id",
    "openai-processing-ms", "cf-ray", "x-envoy-upstream-service-time", "server-timing",
    "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-output-tokens-remaining",
    "anthropic-ratelimit-input-tokens-reset", "anthropic-ratelimit-output-tokens-reset",
    "set-cookie", "content-length", "x-stainless-retry-count", "x-stainless-read-timeout",
    "idempotency-key",
})
"""Header names (lower case) that differ on every call; never compared."""



def text_diff(old: str, new: str, old_name: str, new_name: str, context: int = 2) -> str:
    """A unified diff of two texts ("" when equal)."""
    if old == new:
        return ""
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                 old_name, new_name, n=context)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def headers_map(raw: Value) -> dict[str, Value] | None:
    """Headers as a lower-cased name -> value map, per-call noise (VOLATILE_HEADERS) left out."""
    if raw is None:
        return None
    items: Iterable[Any] = raw.items() if isinstance(raw, dict) else (
        raw if isinstance(raw, list | tuple) else ())
    out: dict[str, str] = {}
    for item in items:
        if not (isinstance(item, list | tuple) and len(item) == 2):
            continue
        k, v = item
        name = (k.decode("latin-1") if isinstance(k, bytes) else str(k)).lower()
        if name in VOLATILE_HEADERS:
            continue
        text = v.decode("latin-1") if isinstance(v, bytes) else str(v)
        out[name] = text if name not in out else f"{out[name]}, {text}"
    return dict(out)


def _body(raw: Value) -> Value:
    parsed = as_json(raw)
    return parsed if parsed is not None else raw


def view(ev: Event, call: ModelCall | None = None) -> dict[str, Value]:
    """What the diff compares of an event: request, response and error, with JSON
    bodies parsed, volatile headers left out and streams assembled."""
    req: Value = ev.request
    if isinstance(req, dict) and "url" in req:
        req = dict(req)
        if "body" in req:
            req["body"] = _body(req["body"])
        if "headers" in req:
            req["headers"] = headers_map(req["headers"])
    out: dict[str, Value] = {"request": req}
    resp: Value = ev.response
    if isinstance(resp, dict) and "status" in resp:
        resp = dict(resp)
        if "headers" in resp:
            resp["headers"] = headers_map(resp["headers"])
        stream = stream_of(ev)
        resp.pop("body", None)
        if call is not None and call.streamed:
            resp["stream"] = {"model": call.served_model, "output": call.output,
                              "usage": call.usage.as_dict() if call.usage else None}
        elif stream is not None:
            resp["stream"] = [data for _, data in stream]
        else:
            body = response_body(ev)
            if body is not None:
                resp["body"] = _body(body)
    elif ev.chunks:
        resp = b"".join(c.data for c in ev.chunks)
    out["response"] = resp
    if ev.error is not None:
        out["error"] = {"type": ev.error.type, "message": ev.error.message}
    return out
