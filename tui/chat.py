"""The conversation a model saw at one call, read from the request body.

Supports OpenAI Chat Completions (``messages``), OpenAI Responses
(``instructions`` + ``input``) and Anthropic Messages (``system`` +
``messages``). The model's own answer at that step (from the response) is
appended as the last turn, marked ``answer``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import replay
from tui.payloads import answer_text, body_of, provider, response_body, streamed


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the assistant asked for."""

    name: str
    """Tool (function) name."""
    arguments: str
    """Arguments as text (usually JSON)."""
    id: str = ""
    """Call id, used by the matching tool result."""


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of the conversation."""

    role: str
    """``system``, ``user``, ``assistant`` or ``tool``."""
    text: str = ""
    """The message text (non-text parts shown as ``[image]`` and the like)."""
    calls: tuple[ToolCall, ...] = ()
    """Tool calls made by an assistant turn."""
    call_id: str = ""
    """For a tool result: the id of the call it answers."""
    name: str = ""
    """For a tool result: the tool's name when known."""
    answer: bool = False
    """True for the model's reply at this step (from the response)."""
    error: bool = False
    """True for a tool result flagged as an error."""
    streamed: bool = False
    """For the answer: True when it came as a stream, False when it came whole."""


@dataclass(frozen=True, slots=True)
class Conversation:
    """What the model saw, and what it said back."""

    provider: str
    """``openai-chat``, ``openai-responses`` or ``anthropic``."""
    model: str
    """The model asked for."""
    turns: tuple[Turn, ...]
    """Messages in order, the answer last."""
    tools: tuple[str, ...] = field(default=())
    """Names of the tools offered to the model."""


def conversation(ev: replay.Event) -> Conversation | None:
    """The conversation of a model call, or None when ``ev`` is not one."""
    kind = provider(ev)
    body = body_of(ev.request)
    if kind is None or not isinstance(body, dict):
        return None
    if kind == "anthropic":
        turns = _anthropic(body)
    elif kind == "openai-responses":
        turns = _responses(body)
    else:
        turns = _chat(body.get("messages"))
    turns += _answer(ev, kind)
    return Conversation(kind, str(body.get("model", "?")), tuple(turns), _tool_names(body))


def _tool_names(body: dict[str, Any]) -> tuple[str, ...]:
    names = []
    for t in body.get("tools") or ():
        if not isinstance(t, dict):
            continue
        fn = t.get("function")
        name = fn.get("name") if isinstance(fn, dict) else t.get("name", t.get("type"))
        if name:
            names.append(str(name))
    return tuple(names)


def _text(content: Any) -> str:
    """Text of a content value: a string or a list of typed parts/blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict):
                kind = str(part.get("type", ""))
                if isinstance(part.get("text"), str):
                    out.append(part["text"])
                elif kind in ("tool_use", "tool_result", "function_call"):
                    continue
                elif kind:
                    out.append(f"[{kind}]")
        return "\n".join(out)
    return _args(content)


def _args(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        return repr(value)


def _chat(messages: Any) -> list[Turn]:
    turns: list[Turn] = []
    names: dict[str, str] = {}
    for m in messages if isinstance(messages, list | tuple) else ():
        if not isinstance(m, dict):
            continue
        role = str(m.get("role", "?"))
        if role == "developer":
            role = "system"
        calls = []
        for c in m.get("tool_calls") or ():
            fn = c.get("function") if isinstance(c, dict) else None
            if isinstance(fn, dict):
                call = ToolCall(str(fn.get("name", "?")), _args(fn.get("arguments", "")),
                                str(c.get("id", "")))
                names[call.id] = call.name
                calls.append(call)
        call_id = str(m.get("tool_call_id", ""))
        turns.append(Turn(role, _text(m.get("content")), tuple(calls), call_id,
                          str(m.get("name") or names.get(call_id, ""))))
    return turns


def _responses(body: dict[str, Any]) -> list[Turn]:
    turns: list[Turn] = []
    if isinstance(body.get("instructions"), str):
        turns.append(Turn("system", body["instructions"]))
    items = body.get("input")
    if isinstance(items, str):
        return [*turns, Turn("user", items)]
    names: dict[str, str] = {}
    for item in items if isinstance(items, list | tuple) else ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "function_call":
            call = ToolCall(str(item.get("name", "?")), _args(item.get("arguments", "")),
                            str(item.get("call_id", "")))
            names[call.id] = call.name
            if turns and turns[-1].role == "assistant" and not turns[-1].answer:
                last = turns.pop()
                turns.append(Turn("assistant", last.text, (*last.calls, call)))
            else:
                turns.append(Turn("assistant", calls=(call,)))
        elif kind == "function_call_output":
            cid = str(item.get("call_id", ""))
            turns.append(Turn("tool", _text(item.get("output")), call_id=cid,
                              name=names.get(cid, "")))
        elif kind == "message" or "role" in item:
            role = str(item.get("role", "user"))
            turns.append(Turn("system" if role == "developer" else role,
                              _text(item.get("content"))))
        else:
            turns.append(Turn("assistant", f"[{kind}]"))
    return turns


def _anthropic(body: dict[str, Any]) -> list[Turn]:
    turns: list[Turn] = []
    if body.get("system"):
        turns.append(Turn("system", _text(body["system"])))
    names: dict[str, str] = {}
    for m in body.get("messages") or ():
        if not isinstance(m, dict):
            continue
        role = str(m.get("role", "?"))
        content = m.get("content")
        blocks = content if isinstance(content, list) else []
        calls = []
        for b in blocks:
            if isinstance(b, dict) and b.get("type") == "tool_use":
                call = ToolCall(str(b.get("name", "?")), _args(b.get("input", {})),
                                str(b.get("id", "")))
                names[call.id] = call.name
                calls.append(call)
        results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        for r in results:
            cid = str(r.get("tool_use_id", ""))
            turns.append(Turn("tool", _text(r.get("content")), call_id=cid,
                              name=names.get(cid, ""), error=bool(r.get("is_error"))))
        text = _text(content)
        if text or calls or not results:
            turns.append(Turn(role, text, tuple(calls)))
    return turns


def _answer(ev: replay.Event, kind: str) -> list[Turn]:
    if ev.error is not None:
        return [Turn("error", str(ev.error), answer=True)]
    body = response_body(ev)
    calls: list[ToolCall] = []
    if isinstance(body, dict) and not streamed(ev):
        if kind == "openai-chat":
            for choice in body.get("choices") or ():
                msg = choice.get("message") if isinstance(choice, dict) else None
                if isinstance(msg, dict):
                    calls += _chat([msg])[0].calls
        elif kind == "anthropic":
            turns = _anthropic({"messages": [{"role": "assistant",
                                              "content": body.get("content")}]})
            calls += [c for t in turns for c in t.calls]
        else:
            turns = _responses({"input": [o for o in body.get("output") or ()
                                          if isinstance(o, dict)
                                          and o.get("type") == "function_call"]})
            calls += [c for t in turns for c in t.calls]
        if "error" in body and not calls and answer_text(ev) is None:
            return [Turn("error", _args(body["error"]), answer=True)]
    text = answer_text(ev)
    if text is None and not calls:
        return []
    return [Turn("assistant", text or "", tuple(calls), answer=True, streamed=streamed(ev))]
