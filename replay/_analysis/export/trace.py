"""A run as a tree of spans: the shape OpenTelemetry export and the HTML report share.

Plain data, no OpenTelemetry import: :func:`span_tree` turns a (redacted) cassette
into a root :class:`SpanNode` for the run, a node per agent step
(:mod:`replay._analysis.steps`) and in each a node per model call, tool call,
capture, HTTP call and any other event, nested as the run nested them (an event
made inside a tool is its child), with the recorded start times and durations.
Attribute names follow the OpenTelemetry GenAI semantic conventions (``gen_ai.*``;
both ``gen_ai.provider.name`` and the older ``gen_ai.system``), HTTP's
(``http.request.method``, ``url.full``, ``server.*``) and ours (``replay.*``).
Clock, random and uuid reads are span events of the span they happened in;
a library's own reads are left out.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from replay._analysis.compare import NOISE_CHANNELS
from replay._analysis.export.calls import finish_reasons, response_id, total_json
from replay._analysis.steps import Step, steps
from replay._analysis.summary import brief
from replay._analysis.usage import ModelCall, model_call
from replay._cassette.events import Event, Value
from replay._cassette.jsonable import jsonable
from replay._cassette.layout import Cassette

AttrValue: TypeAlias = str | bool | int | float | list[str]
"""What an OpenTelemetry attribute may hold (the kinds we use)."""

PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}
"""Our provider names -> ``gen_ai.provider.name`` values."""

CONTENT_LIMIT = 1 << 20
"""The longest text one attribute holds (longer content is cut, and says so)."""


@dataclass(slots=True)
class SpanEvent:
    """A timestamped event on a span (a prompt message, an answer, a clock read)."""

    name: str
    at_ns: int
    """ns after the run started."""
    attributes: dict[str, AttrValue] = field(default_factory=dict)


@dataclass(slots=True)
class SpanNode:
    """One span: the run, a step, or one event of the run."""

    name: str
    kind: str
    """``run``, ``step``, ``model``, ``tool``, ``capture``, ``http`` or ``other``."""
    start_ns: int
    """ns after the run started."""
    end_ns: int
    seq: int | None = None
    """The event's ``seq`` (None for the run and steps)."""
    client: bool = False
    """An outgoing call (OpenTelemetry span kind CLIENT), else INTERNAL."""
    attributes: dict[str, AttrValue] = field(default_factory=dict)
    events: list[SpanEvent] = field(default_factory=list)
    children: list[SpanNode] = field(default_factory=list)
    error: tuple[str, str] | None = None
    """``(type, message)`` of the exception the call raised."""

    def walk(self) -> Iterable[SpanNode]:
        """This node and every node under it, parents first, in start order."""
        yield self
        for child in self.children:
            yield from child.walk()


def epoch_ns(cassette: Cassette) -> int:
    """When the run started, in ns since the epoch (from the header's ``created``)."""
    text = cassette.header.created.replace("Z", "+00:00")
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return 0
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    delta = when - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _text(value: Value, limit: int = CONTENT_LIMIT) -> str:
    """A payload as text for an attribute: strings as they are, the rest as JSON-ish."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(jsonable(value), ensure_ascii=False)
        except (ValueError, RecursionError):
            text = brief(value, limit)
    return text if len(text) <= limit else text[:limit] + f"... [{len(text)} characters]"


def _tool_name(channel: str) -> str:
    return channel.split(":", 1)[1] if ":" in channel else channel


def model_node(ev: Event, call: ModelCall, *, content: bool = True) -> SpanNode:
    """The span of a model call (GenAI inference span)."""
    model = call.model or call.served_model or "unknown"
    attrs: dict[str, AttrValue] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": PROVIDERS.get(call.provider, call.provider),
        "gen_ai.system": call.provider,
        "gen_ai.request.model": model,
        "replay.api": call.api,
        "replay.streamed": call.streamed,
    }
    if call.served_model:
        attrs["gen_ai.response.model"] = call.served_model
    rid = response_id(ev)
    if rid:
        attrs["gen_ai.response.id"] = rid
    reasons = list(finish_reasons(ev))
    if reasons:
        attrs["gen_ai.response.finish_reasons"] = reasons
    for key, name in (("max_tokens", "gen_ai.request.max_tokens"),
                      ("max_completion_tokens", "gen_ai.request.max_tokens"),
                      ("max_output_tokens", "gen_ai.request.max_tokens"),
                      ("temperature", "gen_ai.request.temperature"),
                      ("top_p", "gen_ai.request.top_p"), ("seed", "gen_ai.request.seed")):
        value = call.params.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attrs[name] = value
    if call.usage is not None:
        attrs["gen_ai.usage.input_tokens"] = call.usage.input_tokens
        attrs["gen_ai.usage.output_tokens"] = call.usage.output_tokens
        if call.usage.cached_tokens:
            attrs["gen_ai.usage.cache_read.input_tokens"] = call.usage.cached_tokens
        if call.usage.cost_usd is not None:
            attrs["replay.cost_usd"] = call.usage.cost_usd
    _server(attrs, ev.request)
    node = SpanNode(f"chat {model}", "model", ev.start_ns, ev.start_ns + ev.duration_ns,
                    ev.seq, client=True, attributes=attrs)
    if content:
        provider = call.provider
        if call.system:
            node.events.append(SpanEvent("gen_ai.system.message", ev.start_ns, {
                "gen_ai.system": provider, "role": "system", "content": _text(call.system)}))
        for role, text in call.messages:
            kind = role if role in ("user", "assistant", "tool") else "user"
            node.events.append(SpanEvent(f"gen_ai.{kind}.message", ev.start_ns, {
                "gen_ai.system": provider, "role": role, "content": _text(text)}))
        choice: dict[str, AttrValue] = {"gen_ai.system": provider, "index": 0,
                                        "message.role": "assistant",
                                        "message.content": _text(call.output)}
        if reasons:
            choice["finish_reason"] = reasons[0]
        node.events.append(SpanEvent("gen_ai.choice", node.end_ns, choice))
    return node


def _server(attrs: dict[str, AttrValue], request: Value) -> None:
    url = request.get("url") if isinstance(request, dict) else None
    if isinstance(url, bytes):
        url = url.decode("latin-1")
    if not isinstance(url, str):
        return
    parts = urlsplit(url)
    if parts.hostname:
        attrs["server.address"] = parts.hostname
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None and parts.scheme in ("http", "https"):
        port = 443 if parts.scheme == "https" else 80
    if port is not None:
        attrs["server.port"] = port


def event_node(ev: Event, call: ModelCall | None, *, content: bool = True,
               call_ids: dict[int, str] | None = None) -> SpanNode:
    """The span of one event (a model call, tool, capture, HTTP call or other)."""
    if call is not None:
        node = model_node(ev, call, content=content)
    elif ev.channel.startswith("tool:"):
        name = _tool_name(ev.channel)
        attrs: dict[str, AttrValue] = {"gen_ai.operation.name": "execute_tool",
                                       "gen_ai.tool.name": name, "gen_ai.tool.type": "function"}
        if call_ids and ev.seq in call_ids:
            attrs["gen_ai.tool.call.id"] = call_ids[ev.seq]
        if content:
            req = ev.request
            args = req.get("args", req) if isinstance(req, dict) else req
            attrs["gen_ai.tool.call.arguments"] = _text(args)
            if ev.error is None:
                attrs["gen_ai.tool.call.result"] = _text(ev.response)
        node = SpanNode(f"execute_tool {name}", "tool", ev.start_ns,
                        ev.start_ns + ev.duration_ns, ev.seq, attributes=attrs)
    elif ev.channel.startswith("http") and isinstance(ev.request, dict):
        method = str(ev.request.get("method", "GET"))
        attrs = {"http.request.method": method}
        url = ev.request.get("url")
        if isinstance(url, str):
            attrs["url.full"] = url
        _server(attrs, ev.request)
        status = ev.response.get("status") if isinstance(ev.response, dict) else None
        if type(status) is int:
            attrs["http.response.status_code"] = status
            if status >= 400:
                attrs["error.type"] = str(status)
        node = SpanNode(method, "http", ev.start_ns, ev.start_ns + ev.duration_ns, ev.seq,
                        client=True, attributes=attrs)
    else:
        kind = "capture" if ev.channel.startswith("capture:") else "other"
        attrs = {}
        if content:
            attrs["replay.request"] = _text(ev.request)
            if ev.error is None:
                attrs["replay.response"] = _text(ev.response)
        node = SpanNode(ev.channel.replace(":", " ", 1), kind, ev.start_ns,
                        ev.start_ns + ev.duration_ns, ev.seq, attributes=attrs)
    node.attributes["replay.seq"] = ev.seq
    node.attributes["replay.channel"] = ev.channel
    node.attributes["replay.task"] = ev.task
    if ev.site is not None:
        node.attributes["code.file.path"] = ev.site.file
        node.attributes["code.line.number"] = ev.site.line
        node.attributes["code.function.name"] = ev.site.function
    if ev.error is not None:
        node.error = (ev.error.type, ev.error.message)
        node.attributes.setdefault("error.type", ev.error.type)
        node.events.append(SpanEvent("exception", node.end_ns, {
            "exception.type": ev.error.type, "exception.message": ev.error.message}))
    return node


def run_name(cassette: Cassette) -> str:
    """What the run is called: its entry point, or the program it ran."""
    meta = cassette.header.meta
    for key in ("entry", "pytest.nodeid"):
        if isinstance(meta.get(key), str):
            return str(meta[key])
    argv = [a for a in cassette.header.argv if a not in ("-c", "-m")]
    return argv[0].rsplit("/", 1)[-1] if argv else "agent"


def step_node(step: Step) -> SpanNode:
    """The span of an agent step (its children are added by :func:`span_tree`)."""
    attrs: dict[str, AttrValue] = {"replay.step.index": step.index,
                                   "replay.step.kind": step.kind.value,
                                   "replay.step.tools": [t.call.name for t in step.tools]}
    if step.usage is not None:
        attrs["gen_ai.usage.input_tokens"] = step.usage.input_tokens
        attrs["gen_ai.usage.output_tokens"] = step.usage.output_tokens
        if step.usage.cost_usd is not None:
            attrs["replay.cost_usd"] = step.usage.cost_usd
    attrs["replay.total.tokens"] = step.total.total_tokens
    if step.total.cost_usd is not None:
        attrs["replay.total.cost_usd"] = step.total.cost_usd
    node = SpanNode(f"step {step.index}: {step.name}", "step", step.start_ns, step.end_ns,
                    attributes=attrs)
    failed = step.errors
    if failed:  # the step's status says one of its events raised
        attrs["replay.step.errors"] = len(failed)
        first = failed[0].error
        assert first is not None
        node.error = (first.type, f"#{failed[0].seq} {failed[0].channel}: {first.message}")
    return node


def span_tree(cassette: Cassette, *, content: bool = True, name: str | None = None,
              run_steps: Sequence[Step] | None = None) -> SpanNode:
    """The run as a span tree: run, agent steps (:func:`replay._analysis.steps.steps`),
    then the events of each step as they nested. Pass a redacted cassette
    (``shown(cassette)``); ``content=False`` leaves prompts, answers, tool arguments
    and results out; ``run_steps`` are the steps when already at hand.
    """
    events = sorted(cassette.events, key=lambda e: e.seq)
    if run_steps is None:
        run_steps = steps(events)
    groups = [(step_node(st), [e.seq for e in st.events]) for st in run_steps]
    call_ids = {t.event.seq: t.call.id for st in run_steps for t in st.tools
                if t.event is not None and t.call.id is not None}
    agent = name or run_name(cassette)
    end = max((e.start_ns + e.duration_ns for e in events), default=0)
    calls = [(e, model_call(e)) for e in events]
    root = SpanNode(f"invoke_agent {agent}", "run", 0, end, attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent,
        "replay.events": len(events)})
    usage = total_json(c for _, c in calls if c is not None)
    for key in ("input_tokens", "output_tokens"):
        root.attributes[f"gen_ai.usage.{key}"] = int(usage[key])
    root.attributes["replay.cost_usd"] = float(usage["cost_usd"])
    root.attributes["replay.model_calls"] = int(usage["calls"])
    nodes: dict[int, SpanNode] = {}
    holder: dict[int, SpanNode] = {}
    for group, seqs in groups:
        root.children.append(group)
        for s in seqs:
            holder[s] = group
    for ev, call in calls:
        if isinstance(ev.meta, dict) and "lib" in ev.meta:
            continue
        parent = nodes.get(ev.parent) if ev.parent is not None else None
        if parent is None:
            parent = holder.get(ev.seq, root)
        if ev.channel in NOISE_CHANNELS:
            parent.events.append(SpanEvent(f"replay.{ev.channel}", ev.start_ns, {
                "replay.seq": ev.seq, "replay.request": _text(ev.request, 200)}))
            continue
        node = event_node(ev, call, content=content, call_ids=call_ids)
        nodes[ev.seq] = node
        parent.children.append(node)
    root.children.sort(key=lambda n: n.start_ns)
    return root


def node_json(node: SpanNode, base_ns: int = 0) -> dict[str, Any]:
    """A node (and its children) as JSON, times in ns since ``base_ns``."""
    return {"name": node.name, "kind": node.kind, "seq": node.seq,
            "start_ns": base_ns + node.start_ns, "end_ns": base_ns + node.end_ns,
            "attributes": dict(node.attributes),
            "events": [{"name": e.name, "at_ns": base_ns + e.at_ns,
                        "attributes": dict(e.attributes)} for e in node.events],
            "error": list(node.error) if node.error else None,
            "children": [node_json(c, base_ns) for c in node.children]}
