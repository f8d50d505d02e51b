"""What a recorded model call says: model, prompts, tools, output, tokens and cost.

Reads OpenAI (Chat Completions, Responses), Anthropic (Messages) and Gemini
(``generateContent``, :mod:`replay._analysis.gemini`) calls from
``http`` events, streamed or not: a streamed answer is rebuilt from its SSE
chunks (text, tool calls, the served model, and the usage the last events
carry). Used by the diff (token and cost deltas, prompt text diffs), the
fingerprint (models, system prompts, tool schemas) and drift.

Token counts are normalized across providers: ``input_tokens`` counts every
prompt token, ``cached_tokens`` is the part read from a prompt cache
(Anthropic reports its cache reads and writes beside ``input_tokens``; they
are added in). Costs come from ``genai-prices`` (pydantic's maintained price
data, bundled with the package: no network; updates are never fetched), with
each provider's cached-input and cache-write prices; a ``prices=`` table of your
own (private contracts) takes precedence for the models it names. Costs are
estimates, and ``None`` for a model neither knows.
"""

from __future__ import annotations

import datetime
import functools
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from replay._analysis import gemini
from replay._analysis.toolcalls import ToolResult, ToolUse, requested, results
from replay._analysis.wire import (
    _READERS,
    _assemble,
    _output_text,
    api_of,
    as_json,
    response_body,
    stream_of,
    tool_schemas,
)
from replay._cassette.events import Event, Value

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot

Prices = Mapping[str, tuple[float, float, float]]
"""A private price table: model id prefix -> ``(input, cached input, output)`` in USD
per million tokens (the longest matching prefix wins)."""

_EPOCH = datetime.datetime(1970, 1, 1)
"""The timestamp of our price snapshot (never read: see ``_snapshot``)."""

_PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "gemini": "google"}
"""Our provider names -> genai-prices provider ids."""


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
    """Estimated cost (genai-prices, or your ``prices=``); None when a model's price is unknown."""
    calls: int = 1
    """How many model calls these counts add up."""
    cache_write_tokens: int = 0
    """The part of ``input_tokens`` written to the prompt cache (Anthropic), priced
    at the provider's cache-write rate."""

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        cost = (None if self.cost_usd is None or other.cost_usd is None
                else self.cost_usd + other.cost_usd)
        return Usage(self.input_tokens + other.input_tokens,
                     self.output_tokens + other.output_tokens,
                     self.cached_tokens + other.cached_tokens, cost, self.calls + other.calls,
                     self.cache_write_tokens + other.cache_write_tokens)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``cost_usd`` may be null)."""
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cached_tokens": self.cached_tokens, "total_tokens": self.total_tokens,
                "cost_usd": self.cost_usd, "calls": self.calls}


ZERO = Usage(calls=0, cost_usd=0.0)
"""No calls, no tokens: the start of a sum."""


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One OpenAI, Anthropic or Gemini model call read from an ``http`` event."""

    provider: str
    """``openai``, ``anthropic`` or ``gemini``."""
    api: str
    """``chat`` (Chat Completions), ``responses``, ``messages`` (Anthropic) or
    ``generate`` (Gemini's ``generateContent``)."""
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
    tool_calls: tuple[ToolUse, ...] = ()
    """The tool calls the answer asked for, in order (with their call ids)."""
    tool_results: tuple[ToolResult, ...] = ()
    """The tool results the request carries back to the model, in order."""
    response_id: str | None = None
    """The answer's id (OpenAI ``id``, Anthropic ``id``, Gemini ``responseId``): what a
    later Responses call names as its ``previous_response_id``."""

    def transcript(self) -> str:
        """The prompt as text, one block per message: what a prompt diff compares."""
        parts = [f"[system]\n{self.system}"] if self.system else []
        parts += [f"[{role}]\n{text}" for role, text in self.messages]
        return "\n".join(parts) + "\n" if parts else ""


# -- decoding helpers ------------------------------------------------------------
@functools.cache
def _snapshot() -> DataSnapshot:
    """genai-prices' bundled data, in a snapshot of our own: never the one its
    ``UpdatePrices`` may install (no download, the same answer offline).

    Its timestamp is given, not left to its ``datetime.now`` default: that read
    comes from a dataclass ``__init__`` (a ``<string>`` frame, taken for user
    code), so made inside a run it was recorded or, on replay, an extra call.
    A snapshot not from an auto-update never reads its timestamp."""
    from genai_prices import data
    from genai_prices.data_snapshot import DataSnapshot
    return DataSnapshot(providers=data.providers, from_auto_update=False,
                        timestamp=_EPOCH)


def _now() -> datetime.datetime:
    """The wall clock for genai-prices' date-dependent prices, read by
    ``clock_gettime``, which runs never intercept: left to genai-prices, the read
    went through the patched ``datetime.now`` and landed in the user's run."""
    return datetime.datetime.fromtimestamp(time.clock_gettime(time.CLOCK_REALTIME),
                                           datetime.UTC)


def _genai_cost(model: str, provider: str | None, *, input_tokens: int = 0,
                cached: int = 0, written: int = 0, output: int = 0) -> float | None:
    """The cost in USD genai-prices gives, trying the provider first, then any provider."""
    from genai_prices import Usage as GenaiUsage
    counts = {"input_tokens": input_tokens, "output_tokens": output}
    if cached:
        counts["cache_read_tokens"] = cached
    if written:
        counts["cache_write_tokens"] = written
    snap = _snapshot()
    for pid in dict.fromkeys((_PROVIDERS.get(provider or ""), None)):
        try:
            calc = snap.calc(GenaiUsage(**counts), model, pid, None, _now())
        except (LookupError, ValueError):
            continue
        return float(calc.total_price)
    return None


def _own_price(model: str, prices: Prices | None) -> tuple[float, float, float] | None:
    if not prices:
        return None
    best = max((p for p in prices if model.startswith(p)), key=len, default=None)
    return prices[best] if best is not None else None


def price_of(model: str | None, prices: Prices | None = None, provider: str | None = None
             ) -> tuple[float, float, float] | None:
    """The ``(input, cached input, output)`` price per 1M tokens of ``model``, if known:
    from ``prices`` (model id prefixes) first, else from genai-prices."""
    if not model:
        return None
    own = _own_price(model, prices)
    if own is not None:
        return own
    m = 1_000_000
    fresh = _genai_cost(model, provider, input_tokens=m)
    cached = _genai_cost(model, provider, input_tokens=m, cached=m)
    out = _genai_cost(model, provider, output=m)
    if fresh is None or cached is None or out is None:
        return None
    return (fresh, cached, out)


def priced(usage: Usage, model: str | None, prices: Prices | None = None,
           provider: str | None = None) -> Usage:
    """``usage`` with ``cost_usd`` filled in: from ``prices`` when it names ``model``
    (by prefix), else from genai-prices for ``provider`` (``openai``, ``anthropic``,
    ``gemini``); None when neither knows the model."""
    cost: float | None = None
    own = _own_price(model, prices) if model else None
    if own is not None:
        fresh = max(usage.input_tokens - usage.cached_tokens, 0)
        cost = (fresh * own[0] + usage.cached_tokens * own[1]
                + usage.output_tokens * own[2]) / 1e6
    elif model:
        cost = _genai_cost(model, provider, input_tokens=usage.input_tokens,
                           cached=usage.cached_tokens, written=usage.cache_write_tokens,
                           output=usage.output_tokens)
    return Usage(usage.input_tokens, usage.output_tokens, usage.cached_tokens,
                 None if cost is None else round(cost, 8), usage.calls,
                 usage.cache_write_tokens)


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
        return Usage(inp, _int(raw.get("output_tokens")), cached, cache_write_tokens=written)
    if "prompt_tokens" in raw or "completion_tokens" in raw:  # Chat Completions
        details = raw.get("prompt_tokens_details")
        cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
        return Usage(_int(raw.get("prompt_tokens")), _int(raw.get("completion_tokens")), cached)
    if "input_tokens" in raw or "output_tokens" in raw:  # Responses
        details = raw.get("input_tokens_details")
        cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
        return Usage(_int(raw.get("input_tokens")), _int(raw.get("output_tokens")), cached)
    return None


def usage_of(ev: Event, prices: Prices | None = None) -> Usage | None:
    """Token counts and estimated cost of a model call event; None for anything else."""
    call = model_call(ev, prices)
    return call.usage if call is not None else None


# -- reading a whole call --------------------------------------------------------
def _kind(request: Value) -> tuple[str, str] | None:
    """``(provider, api)`` of a model call: OpenAI and Anthropic (:func:`api_of`), or
    Gemini (``gemini``, ``generate``)."""
    kind = api_of(request)
    if kind is None and isinstance(request, dict) and str(
            request.get("method", "")).upper() == "POST":
        url = request.get("url")
        if isinstance(url, bytes):
            url = url.decode("latin-1")
        if isinstance(url, str) and gemini.is_gemini(url):
            return "gemini", "generate"
    return kind


def model_call(ev: Event, prices: Prices | None = None) -> ModelCall | None:
    """The model call an ``http`` event holds, or None when it is not one."""
    if not ev.channel.startswith("http"):
        return None
    kind = _kind(ev.request)
    if kind is None:
        return None
    provider, api = kind
    assert isinstance(ev.request, dict)
    body = as_json(ev.request.get("body"))
    if not isinstance(body, dict):
        body = {}
    resp = ev.response if isinstance(ev.response, dict) else {}
    status = resp.get("status")
    raw = response_body(ev)
    stream = stream_of(ev, raw)
    model = body.get("model")
    if api == "generate":
        system, messages = gemini.messages(body)
        tools = gemini.tool_schemas(body.get("tools"))
        model = gemini.model_of(str(ev.request.get("url")))
        answer = (gemini.assemble([data for _, data in stream]) if stream is not None
                  else gemini.answer_of(as_json(raw)))
        served = answer.get("modelVersion")
        output = gemini.output_text(answer)
        counts = gemini.usage_counts(answer.get("usageMetadata"))
        usage = Usage(*counts) if counts is not None else None
    else:
        system, messages = _READERS[api](body)
        tools = tool_schemas(body.get("tools"))
        if stream is not None:
            answer = _assemble(stream, provider)
        else:
            answer = as_json(raw)
            if not isinstance(answer, dict):
                answer = {}
        served = answer.get("model")
        output = _output_text(answer, api)
        usage = usage_fields(answer.get("usage"), provider)
    params = {k: v for k, v in body.items()
              if k not in ("messages", "input", "instructions", "system", "tools", "model",
                           "contents", "systemInstruction", "system_instruction")}
    if usage is not None:
        usage = priced(usage, served if isinstance(served, str) else
                       model if isinstance(model, str) else None, prices, provider)
    fp = answer.get("system_fingerprint")
    return ModelCall(
        provider=provider, api=api, model=model if isinstance(model, str) else None,
        served_model=served if isinstance(served, str) else None,
        system_fingerprint=fp if isinstance(fp, str) else None,
        system=system, messages=tuple(messages), tools=tools, params=params,
        output=output, usage=usage, streamed=stream is not None,
        status=status if type(status) is int else None,
        tool_calls=requested(answer, api), tool_results=results(body, api),
        response_id=rid if isinstance(rid := answer.get("id", answer.get("responseId")), str)
        else None)


def iter_calls(events: Iterable[Event]) -> Iterator[tuple[Event, ModelCall]]:
    """Every model call among ``events`` with its event."""
    for ev in events:
        call = model_call(ev)
        if call is not None:
            yield ev, call
