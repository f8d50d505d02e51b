"""Renderings of steps and context diffs: the text ``replay show --steps`` / ``--context``
print, and their JSON documents (``agent-replay/steps/1``, ``agent-replay/context/1``,
specified in docs/steps.md; fields are only ever added within a version)."""

from __future__ import annotations

from typing import Any

from replay._analysis.context import ContextDiff, MessageChange, MessageStatus, context_diffs
from replay._analysis.steps import Step
from replay._analysis.summary import summarize
from replay._analysis.usage import Usage
from replay._cassette.events import Event

STEPS_SCHEMA = "agent-replay/steps/1"
"""The ``schema`` of ``replay show --steps --json``."""
CONTEXT_SCHEMA = "agent-replay/context/1"
"""The ``schema`` of ``replay show --context N --json``."""
MAX_LINES = 8
"""Lines of a message's text shown in the context report."""
MAX_LINE = 160
"""Characters of a line shown in the context report."""

_MARK = {MessageStatus.ADDED: "+", MessageStatus.CHANGED: "~", MessageStatus.REMOVED: "-",
         MessageStatus.TRUNCATED: "<"}


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.1f} ms"


def _cost(cost: float | None) -> str:
    return "cost unknown" if cost is None else f"${cost:.6f}"


def _tokens(u: Usage) -> str:
    return f"{u.input_tokens:,} in / {u.output_tokens:,} out"


def _model(step: Step) -> str:
    call = step.call
    if call is None:
        return ""
    served = f", served {call.served_model}" if call.served_model and (
        call.served_model != call.model) else ""
    how = "streamed" if call.streamed else "not streamed"
    return f"{call.provider} {call.api} {call.model or '?'}{served}, {how}"


def _depth(ev: Event, by_seq: dict[int, Event]) -> int:
    depth, seen = 0, {ev.seq}
    while ev.parent is not None and ev.parent in by_seq and ev.parent not in seen:
        ev = by_seq[ev.parent]
        seen.add(ev.seq)
        depth += 1
    return depth


def step_header(step: Step) -> str:
    """A step's first line: number, name, events, start, duration, tokens, cost, totals."""
    parts = [f"step {step.index}  {step.name}",
             f"{len(step.events)} event{'s' * (len(step.events) != 1)}",
             f"at {_ms(step.start_ns)}, {_ms(step.duration_ns)}"]
    if step.usage is not None:
        parts.append(f"tokens {_tokens(step.usage)}, {_cost(step.usage.cost_usd)}")
    if step.total.calls:
        parts.append(f"total {step.total.total_tokens:,} tokens, {_cost(step.total.cost_usd)}")
    if step.errors:
        parts.append(f"{len(step.errors)} raised")
    return "  |  ".join(parts)


def steps_text(steps: list[Step], *, width: int = 90) -> str:
    """The step tree: a header per step, then its events (nested ones indented)."""
    if not steps:
        return "no events\n"
    events = sum(len(s.events) for s in steps)
    calls = sum(1 for s in steps if s.call is not None)
    total = steps[-1].total
    span = max(s.end_ns for s in steps) - min(s.start_ns for s in steps)
    head = (f"{len(steps)} step{'s' * (len(steps) != 1)}, {calls} model "
            f"call{'s' * (calls != 1)}, {events} events, {_ms(span)}")
    if total.calls:
        head += f"; tokens {total.total_tokens:,} ({_tokens(total)}), {_cost(total.cost_usd)}"
    lines = [head]
    read = context_diffs([(s.event, s.call) for s in steps
                          if s.event is not None and s.call is not None])
    for step in steps:
        lines += ["", step_header(step)]
        if step.call is not None:
            lines.append(f"  model: {_model(step)}"
                         + (f", conversation {step.conversation}" if step.conversation else ""))
            ctx = read.get(step.seq)
            if ctx is not None:
                lines.append(f"  read: {context_line(ctx)}")
        tools = {t.event.seq: t for t in step.tools if t.event is not None}
        by_seq = {e.seq: e for e in step.events}
        for ev in step.events:
            pad = "  " * (1 + _depth(ev, by_seq))
            line = f"{pad}#{ev.seq:<4} {ev.channel:<18} {summarize(ev, width)}"
            t = tools.get(ev.seq)
            if t is not None and t.result_seq is not None:
                line += f"  [result read by #{t.result_seq}]"
            lines.append(line)
        for t in step.tools:
            if t.event is None:
                back = f", result read by #{t.result_seq}" if t.result_seq is not None else ""
                lines.append(f"  (asked for {t.call.name}({_clip(t.call.arguments, 60)}), "
                             f"not recorded as a tool event{back})")
    return "\n".join(lines) + "\n"


def _clip(text: str, width: int) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 3] + "..."


def _usage_json(u: Usage | None) -> dict[str, Any] | None:
    return u.as_dict() if u is not None else None


def step_json(step: Step) -> dict[str, Any]:
    """One step as JSON (see docs/steps.md)."""
    call = step.call
    return {
        "index": step.index, "kind": step.kind.value, "name": step.name, "seq": step.seq,
        "task": step.task, "conversation": step.conversation,
        "start_ns": step.start_ns, "end_ns": step.end_ns, "duration_ns": step.duration_ns,
        "model": None if call is None else {
            "provider": call.provider, "api": call.api, "model": call.model,
            "served_model": call.served_model, "streamed": call.streamed,
            "status": call.status},
        "tools": [{"id": t.call.id, "name": t.call.name, "arguments": t.call.arguments,
                   "event": t.event.seq if t.event is not None else None,
                   "result_seq": t.result_seq} for t in step.tools],
        "events": [{"seq": e.seq, "channel": e.channel, "task": e.task, "parent": e.parent,
                    "start_ns": e.start_ns, "duration_ns": e.duration_ns,
                    "ok": e.error is None, "summary": summarize(e, 120)}
                   for e in step.events],
        "usage": _usage_json(step.usage), "total": _usage_json(step.total),
        "errors": [e.seq for e in step.errors],
    }


def steps_json(steps: list[Step]) -> dict[str, Any]:
    """The ``replay show --steps --json`` document."""
    return {"schema": STEPS_SCHEMA, "steps": [step_json(s) for s in steps]}


# -- context ------------------------------------------------------------------------
def _signed(n: int) -> str:
    return f"{n:+,}"


def _body(text: str, indent: str) -> list[str]:
    lines = text.splitlines() or [""]
    out = [indent + _clip(line, MAX_LINE) for line in lines[:MAX_LINES]]
    if len(lines) > MAX_LINES:
        out.append(f"{indent}... ({len(lines) - MAX_LINES} more lines)")
    return out


def _change_lines(c: MessageChange) -> list[str]:
    where = f"[{c.index}]" if c.index is not None else f"[was {c.previous_index}]"
    head = f"{_MARK[c.status]} {where} {c.role} {c.status.value}"
    if c.status is MessageStatus.ADDED:
        return [f"{head}, {len(c.text):,} chars", *_body(c.text, "    ")]
    if c.status is MessageStatus.REMOVED:
        return [f"{head}, {len(c.previous_text):,} chars", *_body(c.previous_text, "    ")]
    sizes = f"{len(c.previous_text):,} -> {len(c.text):,} chars ({_signed(c.chars)})"
    if c.previous_index != c.index:
        head += f" (was [{c.previous_index}])"
    return [f"{head}, {sizes}", *_body(c.diff.rstrip("\n"), "    ")]


def context_line(d: ContextDiff) -> str:
    """What a call read, in one line: new and changed messages, characters, tokens."""
    counts = [f"{len(getattr(d, s.value))} {s.value}" for s in MessageStatus
              if getattr(d, s.value)]
    where = f"since #{d.previous_seq}" if d.previous_seq is not None else "(a new conversation)"
    line = f"{d.messages} messages; {', '.join(counts) or 'nothing new'} {where}; "
    line += f"{_signed(d.chars_delta)} chars"
    if d.tokens_delta is not None:
        line += f", {_signed(d.tokens_delta)} prompt tokens"
    return line


def context_text(d: ContextDiff, call_label: str = "") -> str:
    """The report ``replay show --context N`` prints."""
    label = f" ({call_label})" if call_label else ""
    prev = (f"previous call #{d.previous_seq}" if d.previous_seq is not None
            else "first call of the conversation")
    lines = [f"context of #{d.seq}{label}: conversation {d.conversation}, "
             + (f"against {prev}" if d.previous_seq is not None else prev)]
    counts = ", ".join(f"{len(getattr(d, s.value))} {s.value}" for s in MessageStatus)
    lines.append(f"{d.messages} message{'s' * (d.messages != 1)}: {d.kept} kept, {counts}")
    size = f"characters {d.previous_chars:,} -> {d.chars:,} ({_signed(d.chars_delta)})"
    if d.input_tokens is not None:
        before = (f"{d.previous_input_tokens:,}" if d.previous_input_tokens is not None
                  else "unknown" if d.previous_seq is not None else "0")
        delta = f" ({_signed(d.tokens_delta)})" if d.tokens_delta is not None else ""
        size += f"; prompt tokens {before} -> {d.input_tokens:,}{delta}"
    else:
        size += "; prompt tokens not reported"
    lines.append(size)
    for c in d.changes:
        lines += _change_lines(c)
    return "\n".join(lines) + "\n"


def context_json(d: ContextDiff) -> dict[str, Any]:
    """The ``replay show --context N --json`` document."""
    return {
        "schema": CONTEXT_SCHEMA, "seq": d.seq, "previous_seq": d.previous_seq,
        "conversation": d.conversation, "messages": d.messages, "kept": d.kept,
        "chars": d.chars, "previous_chars": d.previous_chars, "chars_delta": d.chars_delta,
        "input_tokens": d.input_tokens, "previous_input_tokens": d.previous_input_tokens,
        "tokens_delta": d.tokens_delta,
        "changes": [{"status": c.status.value, "role": c.role, "index": c.index,
                     "previous_index": c.previous_index, "text": c.text,
                     "previous_text": c.previous_text, "diff": c.diff, "chars": c.chars}
                    for c in d.changes],
    }
