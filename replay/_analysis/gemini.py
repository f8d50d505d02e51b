"""Google Gemini's wire format (``models/{model}:generateContent``): requests and answers.

The Gemini reader behind :func:`replay._analysis.usage.model_call`, beside the
OpenAI and Anthropic ones in :mod:`replay._analysis.wire`. A request holds
``contents`` (``role`` ``user`` or ``model``, a list of ``parts``: ``text``,
``functionCall``, ``functionResponse``...), ``systemInstruction`` and ``tools``
(``functionDeclarations``); the model is named by the URL path. An answer holds
``candidates[0].content.parts``, ``usageMetadata`` and ``modelVersion``; a
stream (``:streamGenerateContent``, SSE with ``alt=sse``, else one JSON array)
sends whole answers, each with a piece of the text, the function calls whole.
Keys are read in the API's camelCase and in snake_case.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote, urlsplit

from replay._cassette.events import Value

_PATH = re.compile(r"/models/(?P<model>[^/:]+):(?P<method>stream)?[gG]enerateContent$")


def _get(obj: Any, camel: str, snake: str | None = None) -> Any:
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    return obj.get(snake) if snake else None


def is_gemini(url: str) -> bool:
    """Whether ``url`` is a Gemini ``generateContent`` call (streamed or not)."""
    return bool(_PATH.search(urlsplit(url).path))


def model_of(url: str) -> str | None:
    """The model id a Gemini URL names (``gemini-2.5-flash``)."""
    m = _PATH.search(urlsplit(url).path)
    return unquote(m.group("model")) if m else None


def _args(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def part_text(part: Any) -> str:
    """One part as text: its text, ``-> name(args)`` for a call, ``<- name: result``
    for a function response, ``<kind>`` for anything else."""
    if not isinstance(part, dict):
        return "" if part is None else str(part)
    if isinstance(part.get("text"), str):
        return str(part["text"])
    call = _get(part, "functionCall", "function_call")
    if isinstance(call, dict):
        return f"-> {call.get('name')}({_args(call.get('args') or {})})"
    result = _get(part, "functionResponse", "function_response")
    if isinstance(result, dict):
        return f"<- {result.get('name')}: {_args(result.get('response'))}"
    kinds = [k for k in part if k not in ("thought", "thoughtSignature", "thought_signature")]
    return f"<{kinds[0] if kinds else 'part'}>"


def content_text(content: Any) -> str:
    """The text of a ``Content`` (its parts joined by newlines), or of a plain string."""
    if isinstance(content, str):
        return content
    parts = _get(content, "parts")
    if not isinstance(parts, list):
        return ""
    return "\n".join(t for t in (part_text(p) for p in parts) if t)


def messages(body: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """System text and ``(role, text)`` messages of a request (``model`` turns as ``assistant``)."""
    system = content_text(_get(body, "systemInstruction", "system_instruction"))
    out: list[tuple[str, str]] = []
    contents = body.get("contents")
    if isinstance(contents, dict | str):
        contents = [contents]
    for item in contents if isinstance(contents, list) else []:
        role = str(_get(item, "role") or "user") if isinstance(item, dict) else "user"
        out.append(("assistant" if role == "model" else role, content_text(item)))
    return system, out


def tool_schemas(tools: Any) -> dict[str, Value]:
    """Function declarations of a request by name."""
    out: dict[str, Value] = {}
    for tool in tools if isinstance(tools, list) else []:
        decls = _get(tool, "functionDeclarations", "function_declarations")
        for decl in decls if isinstance(decls, list) else []:
            if isinstance(decl, dict) and isinstance(decl.get("name"), str):
                out[decl["name"]] = {k: v for k, v in decl.items() if k != "name"}
        for key in tool if isinstance(tool, dict) else ():
            if key not in ("functionDeclarations", "function_declarations"):
                out[f"<{key}>"] = tool[key]
    return out


def parts_of(answer: Any) -> list[Any]:
    """The first candidate's parts."""
    cands = _get(answer, "candidates")
    if not isinstance(cands, list) or not cands:
        return []
    parts = _get(_get(cands[0], "content"), "parts")
    return parts if isinstance(parts, list) else []


def assemble(frames: list[Any]) -> dict[str, Any]:
    """Stream frames (answers) merged into one answer: texts joined, calls kept, the
    last ``usageMetadata`` / ``modelVersion`` / ``responseId``."""
    out: dict[str, Any] = {}
    parts: list[Any] = []
    for frame in frames:
        if not isinstance(frame, dict):
            continue
        for key in ("usageMetadata", "modelVersion", "responseId"):
            if frame.get(key) is not None:
                out[key] = frame[key]
        for part in parts_of(frame):
            if (isinstance(part, dict) and isinstance(part.get("text"), str) and parts
                    and isinstance(parts[-1], dict) and set(parts[-1]) == {"text"}
                    and set(part) == {"text"}):
                parts[-1] = {"text": parts[-1]["text"] + part["text"]}
            else:
                parts.append(part)
    out["candidates"] = [{"content": {"role": "model", "parts": parts}}]
    return out


def answer_of(parsed: Any) -> dict[str, Any]:
    """A non-SSE answer: one object, or (a stream without ``alt=sse``) an array of them."""
    if isinstance(parsed, list):
        return assemble(parsed)
    return parsed if isinstance(parsed, dict) else {}


def output_text(answer: dict[str, Any]) -> str:
    """The answer's text, with function calls as ``-> name(args)`` lines."""
    return "\n".join(t for t in (part_text(p) for p in parts_of(answer)) if t)


def usage_counts(raw: Any) -> tuple[int, int, int] | None:
    """``(input, output, cached)`` tokens of a ``usageMetadata``; output counts thinking
    tokens too (they are billed as output). None when it holds no counts."""
    if not isinstance(raw, dict):
        return None

    def n(camel: str, snake: str) -> int:
        v = _get(raw, camel, snake)
        return v if type(v) is int and v >= 0 else 0
    if not any(k in raw for k in ("promptTokenCount", "prompt_token_count",
                                  "candidatesTokenCount", "candidates_token_count")):
        return None
    return (n("promptTokenCount", "prompt_token_count"),
            n("candidatesTokenCount", "candidates_token_count")
            + n("thoughtsTokenCount", "thoughts_token_count"),
            n("cachedContentTokenCount", "cached_content_token_count"))
