"""Provider wire formats: JSON and SSE bodies, and what OpenAI, Anthropic requests and answers say.

The readers behind :func:`replay._analysis.usage.model_call`: message lists per API,
streamed answers reassembled from their SSE events, tool schemas.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from replay._cassette.events import Event, Value

_API_PATHS = (("/chat/completions", "openai", "chat"), ("/responses", "openai", "responses"),
              ("/messages", "anthropic", "messages"))


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
    ids: dict[int, str] = {}
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
                if isinstance(call.get("id"), str):
                    ids[call.get("index", 0)] = call["id"]
                fn = call.get("function") or {}
                slot["name"] += fn.get("name") or ""
                slot["arguments"] += fn.get("arguments") or ""
    if "choices" not in out and (text or calls):
        msg: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
        if calls:
            msg["tool_calls"] = [{"function": calls[i]} | ({"id": ids[i]} if i in ids else {})
                                 for i in sorted(calls)]
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

