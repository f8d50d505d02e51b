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

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

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



def iter_calls(events: Iterable[Event]) -> Iterator[tuple[Event, ModelCall]]:
    """Every model call among ``events`` with its event."""
    for ev in events:
        call = model_call(ev)
        if call is not None:
            yield ev, call
