"""Reading HTTP events for the TUI: headers, bodies, API shape and stream text.

Pure functions over :class:`replay.Event`, no Textual. Models, token usage and
cost come from ``replay.model_call`` (one price table for diff and TUI); this
module adds what only the TUI needs: a cheap test for "is this a model call"
(for jumps over 100,000 events) and the text each SSE chunk adds to the answer
(OpenAI Chat Completions, OpenAI Responses, Anthropic Messages), for playback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import replay


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


BOILERPLATE_HEADERS = frozenset({
    "accept", "accept-encoding", "connection", "host", "user-agent", "content-length",
    "date", "server", "via", "alt-svc", "keep-alive", "transfer-encoding", "vary",
    "strict-transport-security", "cache-control", "pragma", "expires", "age",
    "access-control-expose-headers", "openai-version", "openai-processing-ms",
    "openai-organization", "openai-project", "x-request-id", "request-id",
    "anthropic-version", "anthropic-organization-id", "x-goog-api-client", "cf-ray",
    "cf-cache-status", "x-envoy-upstream-service-time", "set-cookie", "x-content-type-options",
})
"""Headers every SDK call sends or gets back, whatever the call: shown collapsed."""
BOILERPLATE_PREFIXES = ("x-stainless-", "x-ratelimit-", "anthropic-ratelimit-", "cf-",
                        "x-amz-", "x-goog-")


def is_boilerplate_header(name: str) -> bool:
    """True for a header an SDK or server adds to every call (``x-stainless-*``, rate
    limits, dates, request ids): noise when reading what one call asked and got."""
    low = name.lower()
    return low in BOILERPLATE_HEADERS or low.startswith(BOILERPLATE_PREFIXES)


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


def streamed(ev: replay.Event) -> bool:
    """True when the response came as a stream: server-sent events, or a non-model
    response read in several chunks. A plain answer read whole is one chunk: not streamed."""
    if not ev.chunks:
        return False
    if _is_sse(ev):
        return True
    return len(ev.chunks) > 1 and provider(ev) is None


def response_body(ev: replay.Event) -> Any:
    """The body of an HTTP answer: the stored ``body``, else its chunks joined (parsed
    as JSON when they hold JSON and were not streamed); None when there is none."""
    body = body_of(ev.response)
    if body is not None or not ev.chunks:
        return body
    data = b"".join(c.data for c in ev.chunks)
    if not streamed(ev):
        try:
            return json.loads(data)
        except ValueError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


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
    if streamed(ev):
        return "".join(stream_pieces(ev))
    body = response_body(ev)
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
