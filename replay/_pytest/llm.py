"""Reading model calls out of recorded ``http`` events, for :mod:`replay.testing`.

Understands the OpenAI chat completions and responses APIs and the Anthropic
messages API, streamed (server-sent events) and not. Token counts and costs
are normalised by :mod:`replay._analysis.usage` (the same numbers the diff shows); this
module adds what a test asserts on: the answer's text and the tool calls the
model asked for, with parsed arguments.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from replay._analysis import usage as _usage
from replay._analysis import wire as _wire
from replay._analysis.usage import Usage
from replay._cassette.events import Event


@dataclass(frozen=True, slots=True)
class RequestedToolCall:
    """A tool call the model asked for in its answer."""

    name: str
    """The tool's name."""
    arguments: dict[str, Any]
    """The arguments, parsed from JSON ({} when they are not a JSON object)."""
    id: str = ""
    """The provider's call id."""
    raw_arguments: str = ""
    """The argument string as sent (for Anthropic, the input as JSON)."""


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One request to a model API and its answer."""

    seq: int
    """Event number."""
    provider: str
    """``openai`` or ``anthropic``."""
    api: str
    """``chat`` (Chat Completions), ``responses`` or ``messages`` (Anthropic)."""
    url: str
    """Request URL."""
    model: str | None
    """The model the request asked for."""
    served_model: str | None
    """The model the answer says served it."""
    usage: Usage
    """Token counts (zeros when the answer reported none) and estimated cost."""
    streamed: bool
    """True when the answer came as server-sent events."""
    status: int | None
    """HTTP status (None when the call raised)."""
    text: str
    """The assistant's text in the answer."""
    tool_calls: tuple[RequestedToolCall, ...]
    """Tool calls the model asked for, in order."""
    request: Mapping[str, Any]
    """The JSON request body."""
    event: Event = field(repr=False)
    """The underlying event."""

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools the model asked for."""
        return [tc.name for tc in self.tool_calls]


def _get(value: object, key: str) -> Any:
    return value.get(key) if isinstance(value, Mapping) else None


def _items(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _requested(name: object, arguments: object, call_id: object) -> RequestedToolCall:
    if isinstance(arguments, str):
        raw = arguments
        try:
            parsed: Any = json.loads(arguments) if arguments else {}
        except ValueError:
            parsed = None
    else:
        parsed = arguments
        raw = json.dumps(arguments, separators=(",", ":"), sort_keys=True, default=str)
    return RequestedToolCall(str(name or ""), dict(parsed) if isinstance(parsed, Mapping) else {},
                             str(call_id or ""), raw)


# -- non-streamed answers -----------------------------------------------------------
def _chat(body: Any) -> tuple[str, list[RequestedToolCall]]:
    choices = _items(_get(body, "choices"))
    msg = _get(choices[0], "message") if choices else None
    calls = [_requested(_get(_get(c, "function"), "name"), _get(_get(c, "function"), "arguments"),
                        _get(c, "id")) for c in _items(_get(msg, "tool_calls"))]
    content = _get(msg, "content")
    return (content if isinstance(content, str) else ""), calls


def _responses(body: Any) -> tuple[str, list[RequestedToolCall]]:
    text: list[str] = []
    calls: list[RequestedToolCall] = []
    for item in _items(_get(body, "output")):
        kind = _get(item, "type")
        if kind == "message":
            text += [str(_get(c, "text") or "") for c in _items(_get(item, "content"))
                     if _get(c, "type") == "output_text"]
        elif kind == "function_call":
            calls.append(_requested(_get(item, "name"), _get(item, "arguments"),
                                    _get(item, "call_id") or _get(item, "id")))
    return "".join(text), calls


def _messages(body: Any) -> tuple[str, list[RequestedToolCall]]:
    text: list[str] = []
    calls: list[RequestedToolCall] = []
    for block in _items(_get(body, "content")):
        if _get(block, "type") == "text":
            text.append(str(_get(block, "text") or ""))
        elif _get(block, "type") == "tool_use":
            calls.append(_requested(_get(block, "name"), _get(block, "input") or {},
                                    _get(block, "id")))
    return "".join(text), calls


_READ = {"chat": _chat, "responses": _responses, "messages": _messages}


# -- streamed answers: rebuilt as the body they stand for ---------------------------
def _chat_stream(events: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    for ev in events:
        if _get(ev, "model"):
            out["model"] = ev["model"]
        if isinstance(_get(ev, "usage"), Mapping):
            out["usage"] = ev["usage"]
        for choice in _items(_get(ev, "choices")):
            delta = _get(choice, "delta")
            if isinstance(_get(delta, "content"), str):
                text.append(delta["content"])
            for tc in _items(_get(delta, "tool_calls")):
                index = _get(tc, "index")
                slot = calls.setdefault(index if isinstance(index, int) else 0,
                                        {"id": "", "name": "", "arguments": ""})
                fn = _get(tc, "function")
                slot["id"] = str(_get(tc, "id") or slot["id"])
                slot["name"] += str(_get(fn, "name") or "")
                slot["arguments"] += str(_get(fn, "arguments") or "")
    msg = {"content": "".join(text),
           "tool_calls": [{"id": c["id"], "function": {"name": c["name"],
                                                       "arguments": c["arguments"]}}
                          for _, c in sorted(calls.items())]}
    out["choices"] = [{"message": msg}]
    return out


def _responses_stream(events: list[Any]) -> dict[str, Any]:
    for ev in reversed(events):
        if (str(_get(ev, "type")).startswith("response.")
                and isinstance(_get(ev, "response"), Mapping)
                and _get(ev["response"], "output") is not None):
            return dict(ev["response"])
    return {}


def _messages_stream(events: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    for ev in events:
        kind = _get(ev, "type")
        index = _get(ev, "index") if isinstance(_get(ev, "index"), int) else len(blocks)
        if kind == "message_start":
            out["model"] = _get(_get(ev, "message"), "model")
            usage.update(_get(_get(ev, "message"), "usage") or {})
        elif kind == "message_delta":
            usage.update({k: v for k, v in (_get(ev, "usage") or {}).items() if v is not None})
        elif kind == "content_block_start" and isinstance(_get(ev, "content_block"), Mapping):
            block = dict(ev["content_block"])
            if block.get("type") == "tool_use":
                block["input"] = ""
            blocks[index] = block
        elif kind == "content_block_delta":
            block = blocks.setdefault(index, {"type": "text", "text": ""})
            delta = _get(ev, "delta")
            if isinstance(_get(delta, "text"), str):
                block["text"] = str(block.get("text", "")) + delta["text"]
            elif isinstance(_get(delta, "partial_json"), str):
                block["input"] = str(block.get("input", "")) + delta["partial_json"]
    out["content"] = [blocks[i] for i in sorted(blocks)]
    if usage:
        out["usage"] = usage
    return out


_STREAM = {"chat": _chat_stream, "responses": _responses_stream, "messages": _messages_stream}


def _body_bytes(event: Event) -> bytes | None:
    if event.chunks:
        return b"".join(c.data for c in event.chunks)
    body = _get(event.response, "body")
    if isinstance(body, bytes):
        return body
    return body.encode("utf-8") if isinstance(body, str) else None


def answer_of(event: Event, api: str) -> tuple[dict[str, Any], bool]:
    """The answer's JSON body (a stream rebuilt as one), and whether it was streamed."""
    ctype = _wire.header(_get(event.response, "headers"), "content-type") or ""
    data = _body_bytes(event)
    if data is None:
        parsed = _wire.as_json(_get(event.response, "body"))
        return (dict(parsed) if isinstance(parsed, Mapping) else {}), False
    head = data.lstrip()[:6]
    if "event-stream" in ctype or head in (b"data: ", b"data:{", b"event:"):
        events = [payload for _, payload in _wire.sse_events(data)]
        return _STREAM[api](events), True
    parsed = _wire.as_json(data)
    return (dict(parsed) if isinstance(parsed, Mapping) else {}), False


def model_call(event: Event) -> ModelCall | None:
    """The model call an ``http`` event made, or None when it is not one."""
    if not event.channel.startswith("http"):
        return None
    kind = _wire.api_of(event.request)
    if kind is None:
        return None
    provider, api = kind
    request = _wire.as_json(_get(event.request, "body"))
    request = dict(request) if isinstance(request, Mapping) else {}
    answer, streamed = answer_of(event, api)
    text, calls = _READ[api](answer)
    model, served = request.get("model"), answer.get("model")
    usage = _usage.usage_fields(answer.get("usage"), provider) or Usage(calls=1)
    usage = _usage.priced(usage, served if isinstance(served, str) else
                          model if isinstance(model, str) else None)
    status = _get(event.response, "status")
    return ModelCall(
        seq=event.seq, provider=provider, api=api, url=str(_get(event.request, "url")),
        model=model if isinstance(model, str) else None,
        served_model=served if isinstance(served, str) else None, usage=usage,
        streamed=streamed, status=status if type(status) is int else None, text=text,
        tool_calls=tuple(calls), request=request, event=event)
