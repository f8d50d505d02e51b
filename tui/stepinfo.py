"""Detail-pane sections for agent steps: the step itself, and what its model call read.

Plain Rich renderables over ``replay.Step`` and ``replay.ContextDiff`` (no Textual):
the step's span, tokens, cost and running total, the tool calls its answer asked
for; the model call's context against the previous call of its conversation:
messages added, changed (with a text diff), removed or truncated, in characters
and, where usage says so, tokens.
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text

import replay
from tui.model import fmt_duration, fmt_offset
from tui.render import highlight
from tui.steptree import fmt_cost, fmt_tokens

MAX_TEXT_LINES = 6
"""Lines of an added or removed message shown; the rest is counted."""
MAX_CHANGES = 40
"""Message changes listed; the rest is counted."""
MARKS = {"added": ("+", "#9ece6a"), "removed": ("-", "#f7768e"), "changed": ("~", "#e0af68"),
         "truncated": ("<", "#bb9af7")}


def _heading(title: str) -> Text:
    return Text(f"─ {title} ", style="bold #7aa2f7")


def _usage(u: replay.Usage) -> str:
    cached = f" ({u.cached_tokens} cached)" if u.cached_tokens else ""
    return (f"{u.input_tokens} in{cached} + {u.output_tokens} out = {u.total_tokens} tokens  "
            f"cost {fmt_cost(u.cost_usd)}")


def step_section(step: replay.Step) -> list[RenderableType]:
    """The step: name, span, tokens and cost (its own and the run's so far), its tools."""
    out: list[RenderableType] = [_heading(f"step {step.index}: {step.name}")]
    out.append(Text.assemble(
        (f"{len(step.events)} events", "bold"), f"  {fmt_offset(step.start_ns)} → "
        f"{fmt_offset(step.end_ns)}  took {fmt_duration(step.duration_ns)}  task {step.task}"))
    if step.usage is not None:
        out.append(Text.assemble(("this step  ", "dim"), _usage(step.usage)))
    if step.total.calls:
        out.append(Text.assemble(("run so far ", "dim"), _usage(step.total)))
    for t in step.tools:
        line = Text.assemble(("→ ", "bold #e0af68"), (t.call.name, "bold"),
                             f"({t.call.arguments})"[:120])
        if t.event is not None:
            line.append(f"  ran as #{t.event.seq}", style="dim")
        if t.result_seq is not None:
            line.append(f"  result read by #{t.result_seq}", style="dim")
        elif t.event is None:
            line.append("  (no tool event recorded)", style="dim")
        out.append(line)
    return out


def _lines(text: str, limit: int = MAX_TEXT_LINES) -> str:
    lines = text.split("\n")
    if len(lines) <= limit:
        return text
    return "\n".join(lines[:limit]) + f"\n… {len(lines) - limit} more lines"


def context_section(diff: replay.ContextDiff) -> list[RenderableType]:
    """What the model read: its context against the previous call of its conversation."""
    if diff.previous_seq is None:
        title = f"what the model read (first call of conversation {diff.conversation})"
    else:
        title = f"what the model read (vs #{diff.previous_seq}, conversation {diff.conversation})"
    out: list[RenderableType] = [_heading(title)]
    counts = [f"{len(diff.added)} added", f"{len(diff.changed)} changed",
              f"{len(diff.removed)} removed"]
    if diff.truncated:
        counts.append(f"{len(diff.truncated)} truncated")
    size = f"{diff.chars_delta:+,} chars ({diff.chars:,} in all)"
    tokens = diff.tokens_delta
    if tokens is not None:
        size += f", {tokens:+,} tokens"
        if diff.input_tokens is not None:
            size += f" ({fmt_tokens(diff.input_tokens)} in all)"
    out.append(Text.assemble((f"{diff.messages} messages: ", "bold"), ", ".join(counts),
                             f", {diff.kept} kept  ·  {size}"))
    for ch in diff.changes[:MAX_CHANGES]:
        mark, color = MARKS.get(ch.status.value, ("?", "#c0caf5"))
        where = ch.index if ch.index is not None else ch.previous_index
        head = Text.assemble((f"{mark} ", f"bold {color}"), (f"[{where}] {ch.role}", color),
                             (f"  {ch.chars:+,} chars", "dim"))
        out.append(head)
        if ch.diff and ch.status.value in ("changed", "truncated"):
            out.append(highlight(_lines(ch.diff.rstrip(), 20), "diff"))
        else:
            body = ch.text if ch.status.value != "removed" else ch.previous_text
            out.append(Text(_lines(body), style="#c0caf5" if mark != "-" else "dim"))
    if len(diff.changes) > MAX_CHANGES:
        out.append(Text(f"… {len(diff.changes) - MAX_CHANGES} more changes", style="dim"))
    return out
