"""Tool calls in the model APIs' wire formats: asked for in an answer, carried back in a request.

Each API links a tool call to its result by an id:

- OpenAI Chat Completions: ``choices[].message.tool_calls[].id`` -> a ``tool``
  message's ``tool_call_id``;
- OpenAI Responses: a ``function_call`` output item's ``call_id`` -> a
  ``function_call_output`` input item's ``call_id``;
- Anthropic Messages: a ``tool_use`` block's ``id`` -> a ``tool_result`` block's
  ``tool_use_id``;
- Gemini: a ``functionCall`` part's ``id`` (Gemini 3; older models send none) ->
  a ``functionResponse`` part's ``id``, else by name and order.

Answers are read as assembled (a streamed answer rebuilt as the body it stands
for, see :mod:`replay._analysis.wire`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from replay._analysis import gemini


@dataclass(frozen=True, slots=True)
class ToolUse:
    """A tool call a model's answer asked for."""

    id: str | None
    """The provider's call id (None when the API gave none: older Gemini models)."""
    name: str
    """The tool's name."""
    arguments: str
    """The arguments as sent: a JSON text (Anthropic's and Gemini's objects dumped with
    sorted keys)."""

    def parsed(self) -> Any:
        """The arguments parsed from JSON (the text itself when it is not JSON)."""
        try:
            return json.loads(self.arguments)
        except ValueError:
            return self.arguments


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool's result as a request carries it back to the model."""

    id: str | None
    """The call id it answers (None when the API gave none)."""
    name: str | None
    """The tool's name, when the format says it (Gemini, Responses never)."""
    output: str
    """The result as text."""


def _dump(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _sid(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text")) if isinstance(p, dict) and "text" in p
                         else _dump(p) for p in content)
    return "" if content is None else _dump(content)


def requested(answer: Any, api: str) -> tuple[ToolUse, ...]:
    """The tool calls an (assembled) answer of ``api`` asked for, in order."""
    out: list[ToolUse] = []
    if not isinstance(answer, dict):
        return ()
    if api == "chat":
        for choice in _dicts(answer.get("choices"))[:1]:
            msg = choice.get("message")
            for call in _dicts(msg.get("tool_calls") if isinstance(msg, dict) else None):
                raw = call.get("function")
                fn: dict[str, Any] = raw if isinstance(raw, dict) else {}
                out.append(ToolUse(_sid(call.get("id")), str(fn.get("name") or ""),
                                   _dump(fn.get("arguments") or "")))
    elif api == "responses":
        for item in _dicts(answer.get("output")):
            if item.get("type") in ("function_call", "custom_tool_call"):
                out.append(ToolUse(_sid(item.get("call_id")), str(item.get("name") or ""),
                                   _dump(item.get("arguments", item.get("input", "")))))
    elif api == "messages":
        for block in _dicts(answer.get("content")):
            if block.get("type") == "tool_use":
                out.append(ToolUse(_sid(block.get("id")), str(block.get("name") or ""),
                                   _dump(block.get("input") or {})))
    elif api == "generate":
        for part in _dicts(gemini.parts_of(answer)):
            fc = part.get("functionCall", part.get("function_call"))
            if isinstance(fc, dict):
                out.append(ToolUse(_sid(fc.get("id")), str(fc.get("name") or ""),
                                   _dump(fc.get("args") or {})))
    return tuple(out)


def results(body: Any, api: str) -> tuple[ToolResult, ...]:
    """The tool results a request body of ``api`` carries, in order."""
    out: list[ToolResult] = []
    if not isinstance(body, dict):
        return ()
    if api == "chat":
        for msg in _dicts(body.get("messages")):
            if msg.get("role") == "tool":
                out.append(ToolResult(_sid(msg.get("tool_call_id")), _sid(msg.get("name")),
                                      _text(msg.get("content"))))
    elif api == "responses":
        for item in _dicts(body.get("input")):
            if item.get("type") in ("function_call_output", "custom_tool_call_output"):
                out.append(ToolResult(_sid(item.get("call_id")), None,
                                      _text(item.get("output"))))
    elif api == "messages":
        for msg in _dicts(body.get("messages")):
            for block in _dicts(msg.get("content")):
                if block.get("type") == "tool_result":
                    out.append(ToolResult(_sid(block.get("tool_use_id")), None,
                                          _text(block.get("content"))))
    elif api == "generate":
        for content in _dicts(body.get("contents")):
            for part in _dicts(content.get("parts")):
                res = part.get("functionResponse", part.get("function_response"))
                if isinstance(res, dict):
                    out.append(ToolResult(_sid(res.get("id")), _sid(res.get("name")),
                                          _dump(res.get("response"))))
    return tuple(out)
