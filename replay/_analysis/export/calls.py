"""One model call as plain data: what ``show --json``, JSONL, OTLP and the report say of it.

:func:`replay._analysis.usage.model_call` reads the call (prompt, answer text,
tokens, cost); this adds what an answer says about how it ended (finish reasons)
and its id, read from the plain or streamed body, and renders it all as JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from replay._analysis.usage import ZERO, ModelCall, model_call
from replay._analysis.wire import as_json, response_body, stream_of
from replay._cassette.events import Event


def _answers(ev: Event) -> list[Any]:
    """The answer body, or every data object of a streamed answer."""
    body = response_body(ev)
    stream = stream_of(ev, body)
    if stream is not None:
        return [data for _, data in stream if isinstance(data, dict)]
    answer = as_json(body)
    return [answer] if isinstance(answer, dict) else []


def finish_reasons(ev: Event) -> tuple[str, ...]:
    """Why the model stopped, as the provider says it (``stop``, ``tool_calls``,
    ``end_turn``, ``completed``...), one per choice; () when the answer says nothing."""
    out: list[str] = []
    for data in _answers(ev):
        for choice in data.get("choices") or []:  # Chat Completions, plain or streamed
            if isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str):
                out.append(choice["finish_reason"])
        if isinstance(data.get("stop_reason"), str):  # Anthropic
            out.append(data["stop_reason"])
        delta = data.get("delta")
        if data.get("type") == "message_delta" and isinstance(delta, dict) and isinstance(
                delta.get("stop_reason"), str):
            out.append(delta["stop_reason"])
        resp = data.get("response") if isinstance(data.get("response"), dict) else (
            data if data.get("object") == "response" else None)
        if isinstance(resp, dict) and resp.get("status") in ("completed", "incomplete",
                                                               "failed", "cancelled"):
            details = resp.get("incomplete_details")
            reason = details.get("reason") if isinstance(details, dict) else None
            out = [reason if isinstance(reason, str) else str(resp["status"])]  # the last wins
        for cand in data.get("candidates") or []:  # Gemini
            if isinstance(cand, dict) and isinstance(cand.get("finishReason"), str):
                out.append(cand["finishReason"])
    return tuple(out)


def response_id(ev: Event) -> str | None:
    """The id the provider gave the answer, when it has one."""
    for data in _answers(ev):
        for obj in (data, data.get("response"), data.get("message")):
            if isinstance(obj, dict):
                rid = obj.get("id", obj.get("responseId"))
                if isinstance(rid, str):
                    return rid
    return None


def call_json(ev: Event, call: ModelCall) -> dict[str, Any]:
    """A model call's facts as a JSON object (the ``model_call`` of ``show --json``)."""
    usage = call.usage
    return {
        "provider": call.provider, "api": call.api, "model": call.model,
        "served_model": call.served_model, "streamed": call.streamed, "status": call.status,
        "usage": usage.as_dict() if usage is not None else None,
        "cost_usd": usage.cost_usd if usage is not None else None,
        "answer": call.output, "finish_reasons": list(finish_reasons(ev)),
        "response_id": response_id(ev),
    }


def total_json(calls: Iterable[ModelCall]) -> dict[str, Any]:
    """The calls' tokens and cost added up: ``cost_usd`` sums the calls whose price
    is known, ``unpriced_calls`` counts the others (no usage reported, or a model
    no price table knows)."""
    tokens = ZERO
    cost = 0.0
    unpriced = 0
    n = 0
    for call in calls:
        n += 1
        if call.usage is not None:
            tokens += call.usage
        if call.usage is None or call.usage.cost_usd is None:
            unpriced += 1
        else:
            cost += call.usage.cost_usd
    out = tokens.as_dict()
    out.update(calls=n, cost_usd=round(cost, 8), unpriced_calls=unpriced)
    return out


def calls_of(events: Iterable[Event]) -> dict[int, ModelCall]:
    """Every model call among ``events`` by its event's ``seq``."""
    out: dict[int, ModelCall] = {}
    for ev in events:
        call = model_call(ev)
        if call is not None:
            out[ev.seq] = call
    return out
