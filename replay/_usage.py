"""What a recorded model call says: model, prompts, tools, output, tokens and cost.

Reads OpenAI (Chat Completions, Responses) and Anthropic (Messages) calls from
``http`` events, streamed or not: a streamed answer is rebuilt from its SSE
chunks (text, tool calls, the served model, and the usage the last events
carry). Used by the diff (token and cost deltas, prompt text diffs), the
fingerprint (models, system prompts, tool schemas) and drift.

Token counts are normalized across providers: ``input_tokens`` counts every
prompt token, ``cached_tokens`` is the part read from a prompt cache
(Anthropic reports its cache reads and writes beside ``input_tokens``; they
are added in). Costs come from :data:`PRICES`, list prices in USD per million
tokens; they are estimates, and ``None`` for models not in the table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from replay._events import Event, Value

PRICES: dict[str, tuple[float, float, float]] = {
    # model id prefix: (input, cached input, output) in USD per 1M tokens
    "gpt-5": (1.25, 0.125, 10.0),
    "gpt-5-mini": (0.25, 0.025, 2.0),
    "gpt-5-nano": (0.05, 0.005, 0.40),
    "gpt-4.1": (2.0, 0.50, 8.0),
    "gpt-4.1-mini": (0.40, 0.10, 1.60),
    "gpt-4.1-nano": (0.10, 0.025, 0.40),
    "gpt-4o": (2.50, 1.25, 10.0),
    "gpt-4o-mini": (0.15, 0.075, 0.60),
    "gpt-4-turbo": (10.0, 10.0, 30.0),
    "gpt-3.5-turbo": (0.50, 0.50, 1.50),
    "o1": (15.0, 7.50, 60.0),
    "o3": (2.0, 0.50, 8.0),
    "o3-mini": (1.10, 0.55, 4.40),
    "o4-mini": (1.10, 0.275, 4.40),
    "claude-opus-4": (15.0, 1.50, 75.0),
    "claude-opus-4-5": (5.0, 0.50, 25.0),
    "claude-sonnet-4": (3.0, 0.30, 15.0),
    "claude-haiku-4-5": (1.0, 0.10, 5.0),
    "claude-3-7-sonnet": (3.0, 0.30, 15.0),
    "claude-3-5-sonnet": (3.0, 0.30, 15.0),
    "claude-3-5-haiku": (0.80, 0.08, 4.0),
    "claude-3-opus": (15.0, 1.50, 75.0),
    "claude-3-haiku": (0.25, 0.03, 1.25),
}
"""List prices by model id prefix (longest prefix wins); USD per million tokens.

Estimates for comparing runs, not invoices: check your provider's price page,
and pass ``prices=`` to :func:`replay.diff` to use your own."""

_API_PATHS = (("/chat/completions", "openai", "chat"), ("/responses", "openai", "responses"),
              ("/messages", "anthropic", "messages"))


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one model call (or a sum of calls), normalized across providers."""

    input_tokens: int = 0
    """Every prompt token, cached ones included."""
    output_tokens: int = 0
    """Generated tokens (reasoning tokens included)."""
    cached_tokens: int = 0
    """The part of ``input_tokens`` read from the provider's prompt cache."""
    cost_usd: float | None = None
    """Estimated cost from :data:`PRICES`; None when a model's price is unknown."""
    calls: int = 1
    """How many model calls these counts add up."""

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        cost = (None if self.cost_usd is None or other.cost_usd is None
                else self.cost_usd + other.cost_usd)
        return Usage(self.input_tokens + other.input_tokens,
                     self.output_tokens + other.output_tokens,
                     self.cached_tokens + other.cached_tokens, cost, self.calls + other.calls)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``cost_usd`` may be null)."""
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cached_tokens": self.cached_tokens, "total_tokens": self.total_tokens,
                "cost_usd": self.cost_usd, "calls": self.calls}


ZERO = Usage(calls=0, cost_usd=0.0)
"""No calls, no tokens: the start of a sum."""


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One OpenAI or Anthropic model call read from an ``http`` event."""

    provider: str
    """``openai`` or ``anthropic``."""
    api: str
    """``chat`` (Chat Completions), ``responses`` or ``messages`` (Anthropic)."""
    model: str | None
    """The model id asked for."""
    served_model: str | None
    """The model id the answer names (a dated snapshot, often)."""
    system_fingerprint: str | None
    """OpenAI's backend configuration id, when the answer has one."""
    system: str
    """System (and developer) prompt text, joined by newlines."""
    messages: tuple[tuple[str, str], ...]
    """The conversation as ``(role, text)``; tool calls and results rendered as text."""
    tools: Mapping[str, Value]
    """Tool schemas offered to the model, by tool name."""
    params: Mapping[str, Value]
    """Every other request field (temperature, max_tokens, stream...)."""
    output: str
    """The answer's text, with tool calls rendered as ``name(arguments)`` lines."""
    usage: Usage | None
    """Token counts and cost, when the answer reports them."""
    streamed: bool = False
    """True when the answer came as server-sent events."""
    status: int | None = None
    """HTTP status of the answer."""

    def transcript(self) -> str:
        """The prompt as text, one block per message: what a prompt diff compares."""
        parts = [f"[system]\n{self.system}"] if self.system else []
        parts += [f"[{role}]\n{text}" for role, text in self.messages]
        return "\n".join(parts) + "\n" if parts else ""


# -- decoding helpers ------------------------------------------------------------
def as_json(body: Value) -> Any:
    """A body as parsed JSON: maps and lists as they are, bytes/str parsed; else None."""
    if isinstance(body, dict | list):
        if isinstance(body, dict) and len(body) == 1:
            for key in ("json", "$json"):
                if key in body:
                    return body[key]
        return body
    if isinstance(body, bytes | str):
        text = body.strip()
        if not text or text[:1] not in (b"{", b"[", "{", "["):
            return None
        try:
            return json.loads(text)
        except ValueError:
            return None
    return None


def sse_events(data: bytes | str) -> list[tuple[str | None, Any]]:
    """Server-sent events in ``data`` as ``(event name, parsed data)``; ``[DONE]`` dropped."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    out: list[tuple[str | None, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name: str | None = None
        lines: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                lines.append(line[5:].removeprefix(" "))
        if not lines:
            continue
        payload = "\n".join(lines)
        if payload.strip() == "[DONE]":
            continue
        try:
            out.append((name, json.loads(payload)))
        except ValueError:
            out.append((name, payload))
    return out


def response_body(ev: Event) -> Value:
    """The body of an ``http`` answer: the stored ``body``, else its chunks joined."""
    resp = ev.response if isinstance(ev.response, dict) else {}
    if resp.get("body") is not None:
        return resp["body"]
    if ev.chunks:
        return b"".join(c.data for c in ev.chunks)
    return None


def stream_of(ev: Event, body: Value = None) -> list[tuple[str | None, Any]] | None:
    """The server-sent events of a streamed ``http`` answer, or None when not streamed
    (``body``: the answer's body when already at hand)."""
    resp = ev.response if isinstance(ev.response, dict) else {}
    if body is None:
        body = response_body(ev)
    if isinstance(body, bytes | str) and _is_sse(resp.get("headers"), body):
        return sse_events(body)
    return None


def header(headers: Value, name: str) -> str | None:
    """A header's value from a map or a list of ``[name, value]`` pairs (any case)."""
    name = name.lower()
    items: Iterable[Any] = headers.items() if isinstance(headers, dict) else (
        headers if isinstance(headers, list | tuple) else ())
    for item in items:
        if isinstance(item, list | tuple) and len(item) == 2:
            k, v = item
            k = k.decode("latin-1") if isinstance(k, bytes) else k
            if isinstance(k, str) and k.lower() == name:
                return v.decode("latin-1") if isinstance(v, bytes) else str(v)
    return None


def _is_sse(headers: Value, body: bytes | str) -> bool:
    ctype = header(headers, "content-type") or ""
    if "event-stream" in ctype:
        return True
    head = body[:6]
    return head in (b"data: ", "data: ") or body[:7] in (b"event: ", "event: ")


def api_of(request: Value) -> tuple[str, str] | None:
    """``(provider, api)`` when ``request`` is a model-API call, else None."""
    if not isinstance(request, dict) or str(request.get("method", "")).upper() != "POST":
        return None
    url = request.get("url")
    if isinstance(url, bytes):
        url = url.decode("latin-1")
    if not isinstance(url, str):
        return None
    path = urlsplit(url).path.rstrip("/")
    for suffix, provider, api in _API_PATHS:
        if path.endswith(suffix):
            return provider, api
    return None


def price_of(model: str | None, prices: Mapping[str, tuple[float, float, float]] | None = None
             ) -> tuple[float, float, float] | None:
    """The ``(input, cached input, output)`` price per 1M tokens of ``model``, if known."""
    if not model:
        return None
    table = PRICES if prices is None else prices
    best = max((p for p in table if model.startswith(p)), key=len, default=None)
    return table[best] if best is not None else None


def priced(usage: Usage, model: str | None,
           prices: Mapping[str, tuple[float, float, float]] | None = None) -> Usage:
    """``usage`` with ``cost_usd`` filled in from the price of ``model``."""
    price = price_of(model, prices)
    if price is None:
        return Usage(usage.input_tokens, usage.output_tokens, usage.cached_tokens, None,
                     usage.calls)
    fresh = max(usage.input_tokens - usage.cached_tokens, 0)
    cost = (fresh * price[0] + usage.cached_tokens * price[1]
            + usage.output_tokens * price[2]) / 1e6
    return Usage(usage.input_tokens, usage.output_tokens, usage.cached_tokens, round(cost, 8),
                 usage.calls)


# -- reading usage fields ----------------------------------------------------------
def _int(v: Any) -> int:
    return v if type(v) is int and v >= 0 else 0


def usage_fields(raw: Any, provider: str) -> Usage | None:
    """Normalize one provider ``usage`` object; None when it holds no counts."""
    if not isinstance(raw, dict):
        return None
    if provider == "anthropic":
        cached = _int(raw.get("cache_read_input_tokens"))
        written = _int(raw.get("cache_creation_input_tokens"))
        inp = _int(raw.get("input_tokens")) + cached + written
        return Usage(inp, _int(raw.get("output_tokens")), cached)
    if "prompt_tokens" in raw or "completion_tokens" in raw:  # Chat Completions
        details = raw.get("prompt_tokens_details")
        cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
        return Usage(_int(raw.get("prompt_tokens")), _int(raw.get("completion_tokens")), cached)
    if "input_tokens" in raw or "output_tokens" in raw:  # Responses
        details = raw.get("input_tokens_details")
        cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
        return Usage(_int(raw.get("input_tokens")), _int(raw.get("output_tokens")), cached)
    return None


def usage_of(ev: Event, prices: Mapping[str, tuple[float, float, float]] | None = None
             ) -> Usage | None:
    """Token counts and estimated cost of a model call event; None for anything else."""
    call = model_call(ev, prices)
    return call.usage if call is not None else None


# -- reading a whole call --------------------------------------------------------
def model_call(ev: Event, prices: Mapping[str, tuple[float, float, float]] | None = None
               ) -> ModelCall | None:
    """The model call an ``http`` event holds, or None when it is not one."""
    if not ev.channel.startswith("http"):
        return None
    kind = api_of(ev.request)
    if kind is None:
        return None
    provider, api = kind
    assert isinstance(ev.request, dict)
    body = as_json(ev.request.get("body"))
    if not isinstance(body, dict):
        body = {}
    system, messages = _READERS[api](body)
    tools = tool_schemas(body.get("tools"))
    params = {k: v for k, v in body.items()
              if k not in ("messages", "input", "instructions", "system", "tools", "model")}
    resp = ev.response if isinstance(ev.response, dict) else {}
    status = resp.get("status")
    raw = response_body(ev)
    stream = stream_of(ev, raw)
    if stream is not None:
        answer = _assemble(stream, provider)
    else:
        answer = as_json(raw)
        if not isinstance(answer, dict):
            answer = {}
    served = answer.get("model")
    output = _output_text(answer, api)
    usage = usage_fields(answer.get("usage"), provider)
    model = body.get("model")
    if usage is not None:
        usage = priced(usage, served if isinstance(served, str) else
                       model if isinstance(model, str) else None, prices)
    fp = answer.get("system_fingerprint")
    return ModelCall(
        provider=provider, api=api, model=model if isinstance(model, str) else None,
        served_model=served if isinstance(served, str) else None,
        system_fingerprint=fp if isinstance(fp, str) else None,
        system=system, messages=tuple(messages), tools=tools, params=params,
        output=output, usage=usage, streamed=stream is not None,
        status=status if type(status) is int else None)


def _text(content: Any) -> str:
    """Text of a string, or of a list of content parts (other parts as ``<type>``)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return "" if content is None else json.dumps(content, sort_keys=True, default=str)
    out: list[str] = []
    for part in content:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, dict):
            kind = part.get("type")
            if isinstance(part.get("text"), str):
                out.append(part["text"])
            elif kind == "tool_use":
                out.append(f"-> {part.get('name')}({_args(part.get('input'))})")
            elif kind == "tool_result":
                out.append(f"<- {_text(part.get('content'))}")
            else:
                out.append(f"<{kind}>")
    return "\n".join(out)


def _args(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _chat_messages(body: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    system: list[str] = []
    messages: list[tuple[str, str]] = []
    for msg in body.get("messages") or []:
        if not isinstance(msg, dict):
            continue
        role = str(msg.get("role", ""))
        text = _text(msg.get("content"))
        for call in msg.get("tool_calls") or []:
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                call_text = f"-> {fn.get('name')}({_args(fn.get('arguments'))})"
                text += ("\n" if text else "") + call_text
        if role in ("system", "developer"):
            system.append(text)
        else:
            messages.append((role, text))
    return "\n".join(system), messages


def _responses_messages(body: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    system = [body["instructions"]] if isinstance(body.get("instructions"), str) else []
    messages: list[tuple[str, str]] = []
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "function_call":
            messages.append(("assistant", f"-> {item.get('name')}({_args(item.get('arguments'))})"))
        elif kind == "function_call_output":
            messages.append(("tool", _text(item.get("output"))))
        elif "role" in item:
            role = str(item["role"])
            text = _text(item.get("content"))
            if role in ("system", "developer"):
                system.append(text)
            else:
                messages.append((role, text))
        else:
            messages.append((str(kind), _args(item)))
    return "\n".join(system), messages


def _anthropic_messages(body: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    messages = [(str(m.get("role", "")), _text(m.get("content")))
                for m in body.get("messages") or [] if isinstance(m, dict)]
    return _text(body.get("system")), messages


_READERS = {"chat": _chat_messages, "responses": _responses_messages,
            "messages": _anthropic_messages}


def tool_schemas(tools: Any) -> dict[str, Value]:
    """Tool definitions of a request by name (the name itself left out of the schema)."""
    out: dict[str, Value] = {}
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        fn = tool.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):  # Chat Completions
            out[fn["name"]] = {k: v for k, v in fn.items() if k != "name"}
        elif isinstance(tool.get("name"), str):  # Responses, Anthropic
            out[tool["name"]] = {k: v for k, v in tool.items() if k not in ("name", "type")
                                 } | ({"type": tool["type"]} if tool.get("type") not in
                                      (None, "function", "custom") else {})
        elif isinstance(tool.get("type"), str):  # built-in tools (web_search...)
            out[f"<{tool['type']}>"] = {k: v for k, v in tool.items() if k != "type"}
    return out


def _output_text(answer: dict[str, Any], api: str) -> str:
    if "output_text" in answer and isinstance(answer["output_text"], str):
        return answer["output_text"]
    lines: list[str] = []
    if api == "chat":
        for choice in answer.get("choices") or []:
            msg = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(msg, dict):
                _, rendered = _chat_messages({"messages": [msg]})
                lines += [text for _, text in rendered]
    elif api == "responses":
        _, rendered = _responses_messages({"input": [
            i for i in answer.get("output") or [] if isinstance(i, dict)
            and i.get("type") in ("message", "function_call")]})
        lines += [text for _, text in rendered]
    else:
        lines.append(_text(answer.get("content")))
    return "\n".join(line for line in lines if line)


def _assemble(stream: list[tuple[str | None, Any]], provider: str) -> dict[str, Any]:
    """A streamed answer rebuilt as the non-streamed body it stands for (the parts we read)."""
    if provider == "anthropic":
        return _assemble_anthropic(stream)
    out: dict[str, Any] = {}
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    for name, data in stream:
        if not isinstance(data, dict):
            continue
        kind = data.get("type") or name
        if isinstance(kind, str) and kind.startswith("response."):  # Responses API
            if isinstance(data.get("response"), dict):
                out.update({k: v for k, v in data["response"].items() if v is not None})
            continue
        for key in ("model", "system_fingerprint"):
            if data.get(key) is not None:
                out[key] = data[key]
        if isinstance(data.get("usage"), dict):
            out["usage"] = data["usage"]
        for choice in data.get("choices") or []:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str):
                text.append(delta["content"])
            for call in delta.get("tool_calls") or []:
                if not isinstance(call, dict):
                    continue
                slot = calls.setdefault(call.get("index", 0), {"name": "", "arguments": ""})
                fn = call.get("function") or {}
                slot["name"] += fn.get("name") or ""
                slot["arguments"] += fn.get("arguments") or ""
    if "choices" not in out and (text or calls):
        msg: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
        if calls:
            msg["tool_calls"] = [{"function": calls[i]} for i in sorted(calls)]
        out["choices"] = [{"message": msg}]
    return out


def _assemble_anthropic(stream: list[tuple[str | None, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    for _name, data in stream:
        if not isinstance(data, dict):
            continue
        kind = data.get("type")
        if kind == "message_start" and isinstance(data.get("message"), dict):
            msg = data["message"]
            out["model"] = msg.get("model")
            usage.update(msg.get("usage") or {})
        elif kind == "content_block_start" and isinstance(data.get("content_block"), dict):
            block = dict(data["content_block"])
            if block.get("type") == "tool_use":
                block["input"] = ""
            blocks[data.get("index", len(blocks))] = block
        elif kind == "content_block_delta" and isinstance(data.get("delta"), dict):
            block = blocks.setdefault(data.get("index", 0), {"type": "text", "text": ""})
            delta = data["delta"]
            if isinstance(delta.get("text"), str):
                block["text"] = block.get("text", "") + delta["text"]
            elif isinstance(delta.get("partial_json"), str):
                block["input"] = str(block.get("input", "")) + delta["partial_json"]
        elif kind == "message_delta":
            usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
    for block in blocks.values():
        if block.get("type") == "tool_use" and isinstance(block.get("input"), str):
            try:  # streamed as partial JSON: parse it, as the SDK does
                block["input"] = json.loads(block["input"] or "{}")
            except ValueError:
                pass
    out["content"] = [blocks[i] for i in sorted(blocks)]
    if usage:
        out["usage"] = usage
    return out


def iter_calls(events: Iterable[Event]) -> Iterator[tuple[Event, ModelCall]]:
    """Every model call among ``events`` with its event."""
    for ev in events:
        call = model_call(ev)
        if call is not None:
            yield ev, call
