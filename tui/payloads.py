"""Reading model calls out of events: provider, model, usage, cost and stream text.

Pure functions over :class:`replay.Event`, no Textual, so the stats screen, the
detail pane, the stream player and the benchmarks share one reading of the
wire formats: OpenAI Chat Completions, OpenAI Responses and Anthropic Messages,
plain JSON or server-sent events (SSE).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import replay


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts reported by a model API."""

    input: int = 0
    """Prompt / input tokens."""
    output: int = 0
    """Completion / output tokens."""
    cached: int = 0
    """Input tokens served from the provider's prompt cache (part of ``input``)."""

    @property
    def total(self) -> int:
        """Input plus output."""
        return self.input + self.output

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input + other.input, self.output + other.output,
                     self.cached + other.cached)


PRICES: Mapping[str, tuple[float, float]] = {
    # USD per million (input, output) tokens, public list prices; longest prefix wins.
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5": (1.25, 10.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-haiku-4": (1.00, 5.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
}
"""An estimate only: prices change, and cached-token discounts are ignored."""


def headers_of(part: Any) -> list[tuple[str, str]]:
    """Headers of a request/response map as (name, value) pairs, whatever their shape."""
    raw = part.get("headers") if isinstance(part, dict) else None
    if isinstance(raw, dict):
        return [(str(k), str(v)) for k, v in raw.items()]
    if isinstance(raw, list | tuple):
        return [(str(p[0]), str(p[1])) for p in raw
                if isinstance(p, list | tuple) and len(p) == 2]
    return []


def body_of(part: Any) -> Any:
    """The ``body`` of an HTTP request/response map (None when absent)."""
    return part.get("body") if isinstance(part, dict) else None


def provider(ev: replay.Event) -> str | None:
    """``openai-chat``, ``openai-responses``, ``anthropic`` or None for a non-model event."""
    if ev.channel != "http" or not isinstance(ev.request, dict):
        return None
    body = body_of(ev.request)
    if not isinstance(body, dict):
        return None
    url = str(ev.request.get("url", ""))
    path = url.split("?", 1)[0]
    if path.endswith("/messages") and "messages" in body:
        return "anthropic"
    if path.endswith("/chat/completions") or ("messages" in body and "model" in body):
        return "openai-chat"
    if path.endswith("/responses") or ("input" in body and "model" in body):
        return "openai-responses"
    return None


def is_model_call(ev: replay.Event) -> bool:
    """True for a request to a model API we can read."""
    return provider(ev) is not None


def model_of(ev: replay.Event) -> str | None:
    """The model that answered (response body), else the one asked for."""
    body = body_of(ev.response)
    if isinstance(body, dict) and isinstance(body.get("model"), str):
        return str(body["model"])
    for data in sse_data(ev):
        found = _dig(data, ("model",), ("message", "model"), ("response", "model"))
        if isinstance(found, str):
            return found
    asked = body_of(ev.request)
    if isinstance(asked, dict) and isinstance(asked.get("model"), str):
        return str(asked["model"])
    return None


def usage_of(ev: replay.Event) -> Usage | None:
    """Token usage of a model call, from the JSON body or the SSE stream."""
    if provider(ev) is None:
        return None
    body = body_of(ev.response)
    if isinstance(body, dict) and isinstance(body.get("usage"), dict):
        return _usage(body["usage"])
    found: Usage | None = None
    for data in sse_data(ev):
        raw = _dig(data, ("usage",), ("message", "usage"), ("response", "usage"))
        if not isinstance(raw, dict):
            continue
        part = _usage(raw)
        if found is None:
            found = part
        else:  # anthropic: input in message_start, cumulative output in message_delta
            found = Usage(max(found.input, part.input), max(found.output, part.output),
                          max(found.cached, part.cached))
    return found


def _usage(raw: dict[str, Any]) -> Usage:
    def num(*keys: str) -> int:
        for k in keys:
            v = raw.get(k)
            if isinstance(v, int) and not isinstance(v, bool):
                return v
        return 0

    details = raw.get("prompt_tokens_details") or raw.get("input_tokens_details") or {}
    cached = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
    cached = cached or num("cache_read_input_tokens")
    return Usage(num("prompt_tokens", "input_tokens"), num("completion_tokens", "output_tokens"),
                 cached if isinstance(cached, int) else 0)


def cost_of(model: str | None, usage: Usage | None) -> float | None:
    """Estimated USD cost from :data:`PRICES`; None when the model is not listed."""
    if model is None or usage is None:
        return None
    name = model.split("/")[-1]
    best = max((p for p in PRICES if name.startswith(p)), key=len, default=None)
    if best is None:
        return None
    pin, pout = PRICES[best]
    return (usage.input * pin + usage.output * pout) / 1e6


def _dig(data: Any, *paths: tuple[str, ...]) -> Any:
    for path in paths:
        cur = data
        for key in path:
            cur = cur.get(key) if isinstance(cur, dict) else None
        if cur is not None:
            return cur
    return None


# --- server-sent events -------------------------------------------------------------


def sse_by_chunk(chunks: Sequence[bytes]) -> list[list[tuple[str, str]]]:
    """For each chunk, the (event, data) SSE events completed by it.

    An event may be split across chunks; it belongs to the chunk that ends it.
    """
    out: list[list[tuple[str, str]]] = []
    buf = ""
    for data in chunks:
        buf += data.decode("utf-8", "replace").replace("\r\n", "\n")
        done: list[tuple[str, str]] = []
        while "\n\n" in buf:
            block, buf = buf.split("\n\n", 1)
            parsed = _parse_block(block)
            if parsed is not None:
                done.append(parsed)
        out.append(done)
    if buf.strip() and out:
        parsed = _parse_block(buf)
        if parsed is not None:
            out[-1].append(parsed)
    return out


def _parse_block(block: str) -> tuple[str, str] | None:
    name, lines = "", []
    for line in block.split("\n"):
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
    if not lines and not name:
        return None
    return name, "\n".join(lines)


def _is_sse(ev: replay.Event) -> bool:
    if not ev.chunks:
        return False
    for name, value in headers_of(ev.response):
        if name.lower() == "content-type":
            return "event-stream" in value
    head = ev.chunks[0].data[:64].lstrip()
    return head.startswith((b"data:", b"event:", b":"))


def sse_data(ev: replay.Event) -> Iterator[Any]:
    """Every JSON object carried by the event's SSE stream, in order."""
    if not _is_sse(ev):
        return
    for events in sse_by_chunk([c.data for c in ev.chunks]):
        for _name, data in events:
            obj = _json(data)
            if obj is not None:
                yield obj


def _json(text: str) -> Any:
    if not text.startswith("{"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def delta_text(obj: Any) -> str:
    """The text an SSE JSON event adds to the answer (OpenAI or Anthropic), or ``""``."""
    if not isinstance(obj, dict):
        return ""
    kind = obj.get("type")
    if kind == "content_block_delta":  # anthropic
        d = obj.get("delta")
        if isinstance(d, dict):
            text = d.get("text", d.get("partial_json", d.get("thinking", "")))
            return text if isinstance(text, str) else ""
        return ""
    if isinstance(kind, str) and kind.endswith(".delta"):  # openai responses
        text = obj.get("delta")
        return text if isinstance(text, str) else ""
    out = []
    for choice in obj.get("choices") or ():  # openai chat
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        if isinstance(delta.get("content"), str):
            out.append(delta["content"])
        for call in delta.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                if fn.get("name"):
                    out.append(f"\n[call {fn['name']}] ")
                if isinstance(fn.get("arguments"), str):
                    out.append(fn["arguments"])
    return "".join(out)


def stream_pieces(ev: replay.Event) -> list[str]:
    """What each chunk adds to the visible answer.

    Text deltas when the stream is OpenAI/Anthropic SSE, else the chunk's raw text.
    """
    raw = [c.data for c in ev.chunks]
    if not _is_sse(ev):
        return [d.decode("utf-8", "replace") for d in raw]
    pieces = []
    known = False
    for events in sse_by_chunk(raw):
        text = ""
        for _name, data in events:
            obj = _json(data)
            if obj is not None:
                known = True
                text += delta_text(obj)
        pieces.append(text)
    return pieces if known else [d.decode("utf-8", "replace") for d in raw]


def chunk_gaps_ms(ev: replay.Event) -> list[float]:
    """Milliseconds between consecutive chunks (the first from the event start)."""
    out, last = [], 0
    for c in ev.chunks:
        out.append(max(0, c.at_ns - last) / 1e6)
        last = c.at_ns
    return out


def answer_text(ev: replay.Event) -> str | None:
    """The assistant's reply as text (non-streamed JSON or joined stream deltas)."""
    if ev.chunks:
        return "".join(stream_pieces(ev))
    body = body_of(ev.response)
    if not isinstance(body, dict):
        return None
    parts: list[str] = []
    for choice in body.get("choices") or ():
        msg = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(msg, dict) and isinstance(msg.get("content"), str):
            parts.append(msg["content"])
    for block in body.get("content") or () if isinstance(body.get("content"), list) else ():
        if isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    for item in body.get("output") or () if isinstance(body.get("output"), list) else ():
        if isinstance(item, dict) and item.get("type") == "message":
            for c in item.get("content") or ():
                if isinstance(c, dict) and isinstance(c.get("text"), str):
                    parts.append(c["text"])
    return "".join(parts) if parts else None
