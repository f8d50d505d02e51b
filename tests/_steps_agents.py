"""Small tool-using agents on the real SDKs, one per wire format, for the step and context tests.

Each agent asks its question, runs the tool calls the answer asks for (at once,
through ``asyncio.gather``, when there are several), sends the results back and
loops until the model answers without tools. ``stream`` picks the streamed API.
Tools are recorded (``replay.tool``); each tool reads the clock inside itself, so
a step has a nested event.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Callable
from typing import Any

import anthropic
import openai

import replay

QUESTION = "Should I take an umbrella in Paris or in Oslo?"
SYSTEM = "You are a weather assistant. Be brief."
FORECASTS = {"Paris": "rain", "Oslo": "snow", "Rome": "sun"}


@replay.tool
def steps_weather(city: str) -> dict[str, Any]:
    """The forecast of a city (reads the clock inside: a nested event)."""
    return {"city": city, "forecast": FORECASTS.get(city, "fog"),
            "at": datetime.datetime.now().isoformat()}


@replay.tool
def steps_alerts(city: str) -> dict[str, Any]:
    """Weather alerts of a city."""
    return {"city": city, "alerts": []}


TOOLS: dict[str, Callable[..., dict[str, Any]]] = {
    "steps_weather": steps_weather, "steps_alerts": steps_alerts}
PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def run_tools(calls: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Run the requested tools, several at once (each in its own asyncio task)."""
    async def one(name: str, args: dict[str, Any]) -> str:
        return json.dumps(TOOLS[name](**args))

    async def all_of() -> list[str]:
        return list(await asyncio.gather(*(one(n, a) for n, a in calls)))
    if len(calls) == 1:
        return [json.dumps(TOOLS[calls[0][0]](**calls[0][1]))]
    return asyncio.run(all_of())


def chat(base_url: str, stream: bool) -> str:
    """OpenAI Chat Completions."""
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-test", max_retries=0)
    tools: Any = [{"type": "function", "function": {"name": n, "parameters": PARAMS}}
                  for n in TOOLS]
    messages: list[Any] = [{"role": "system", "content": SYSTEM},
                           {"role": "user", "content": QUESTION}]
    while True:
        if stream:
            text, calls = "", {}
            for chunk in client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, tools=tools, stream=True,
                    stream_options={"include_usage": True}):
                for choice in chunk.choices:
                    text += choice.delta.content or ""
                    for tc in choice.delta.tool_calls or []:
                        slot = calls.setdefault(tc.index, {"id": "", "name": "", "args": ""})
                        slot["id"] = tc.id or slot["id"]
                        if tc.function is not None:
                            slot["name"] += tc.function.name or ""
                            slot["args"] += tc.function.arguments or ""
            asked = [(c["id"], c["name"], c["args"]) for _, c in sorted(calls.items())]
        else:
            msg = client.chat.completions.create(model="gpt-4o-mini", messages=messages,
                                                 tools=tools).choices[0].message
            text = msg.content or ""
            asked = [(c.id, c.function.name, c.function.arguments)  # type: ignore[union-attr]
                     for c in msg.tool_calls or []]
        if not asked:
            return text
        messages.append({"role": "assistant", "content": text or None, "tool_calls": [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
            for i, n, a in asked]})
        outs = run_tools([(n, json.loads(a)) for _, n, a in asked])
        messages += [{"role": "tool", "tool_call_id": i, "content": out}
                     for (i, _, _), out in zip(asked, outs, strict=True)]


def responses(base_url: str, stream: bool) -> str:
    """OpenAI Responses."""
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-test", max_retries=0)
    tools: Any = [{"type": "function", "name": n, "parameters": PARAMS} for n in TOOLS]
    items: list[Any] = [{"role": "user", "content": QUESTION}]
    while True:
        if stream:
            with client.responses.stream(model="gpt-4.1-mini", input=items, tools=tools,
                                         instructions=SYSTEM) as s:
                resp = s.get_final_response()
        else:
            resp = client.responses.create(model="gpt-4.1-mini", input=items, tools=tools,
                                           instructions=SYSTEM)
        asked = [o for o in resp.output if o.type == "function_call"]
        if not asked:
            return resp.output_text
        items += [o.model_dump(exclude_none=True) for o in resp.output]
        outs = run_tools([(o.name, json.loads(o.arguments)) for o in asked])
        items += [{"type": "function_call_output", "call_id": o.call_id, "output": out}
                  for o, out in zip(asked, outs, strict=True)]


def messages(base_url: str, stream: bool) -> str:
    """Anthropic Messages."""
    client = anthropic.Anthropic(base_url=base_url, api_key="sk-ant-test", max_retries=0)
    tools: Any = [{"name": n, "input_schema": PARAMS} for n in TOOLS]
    msgs: list[Any] = [{"role": "user", "content": QUESTION}]
    while True:
        if stream:
            with client.messages.stream(model="claude-haiku-4-5", max_tokens=256,
                                        system=SYSTEM, messages=msgs, tools=tools) as s:
                msg = s.get_final_message()
        else:
            msg = client.messages.create(model="claude-haiku-4-5", max_tokens=256,
                                         system=SYSTEM, messages=msgs, tools=tools)
        asked = [b for b in msg.content if b.type == "tool_use"]
        text = "".join(b.text for b in msg.content if b.type == "text")
        if not asked:
            return text
        msgs.append({"role": "assistant", "content": [b.model_dump(exclude_none=True)
                                                      for b in msg.content]})
        outs = run_tools([(b.name, dict(b.input)) for b in asked])  # type: ignore[call-overload]
        msgs.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": b.id, "content": out}
            for b, out in zip(asked, outs, strict=True)]})


def gemini(base_url: str, stream: bool) -> str:
    """Gemini generateContent, through google-genai."""
    from google import genai
    from google.genai import types
    decls = [types.FunctionDeclaration(name=n, parameters=types.Schema(
        type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}))
        for n in TOOLS]
    config = types.GenerateContentConfig(
        system_instruction=SYSTEM, tools=[types.Tool(function_declarations=decls)],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    history: list[Any] = [types.Content(role="user", parts=[types.Part(text=QUESTION)])]
    options = types.HttpOptions(base_url=base_url)
    with genai.Client(api_key="gm-test", http_options=options) as client:
        while True:
            parts: list[Any] = []
            if stream:
                for chunk in client.models.generate_content_stream(
                        model="gemini-2.5-flash", contents=history, config=config):
                    parts += chunk.candidates[0].content.parts or []  # type: ignore[index,union-attr]
            else:
                answer = client.models.generate_content(model="gemini-2.5-flash",
                                                        contents=history, config=config)
                parts = list(answer.candidates[0].content.parts or [])  # type: ignore[index,union-attr]
            asked = [p.function_call for p in parts if p.function_call is not None]
            text = "".join(p.text for p in parts if p.text)
            if not asked:
                return text
            history.append(types.Content(role="model", parts=parts))
            outs = run_tools([(str(c.name), dict(c.args or {})) for c in asked])
            history.append(types.Content(role="user", parts=[
                types.Part(function_response=types.FunctionResponse(
                    id=c.id, name=c.name, response=json.loads(out)))
                for c, out in zip(asked, outs, strict=True)]))


AGENTS: dict[str, Callable[[str, bool], str]] = {
    "chat": chat, "responses": responses, "messages": messages, "generate": gemini}
"""Agent per API (the names ``ModelCall.api`` uses)."""
