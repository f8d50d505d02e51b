"""Agent steps: a run's events grouped by model call (the step tree, step diffs, exports).

A *step* is one model call (OpenAI Chat Completions or Responses, Anthropic
Messages, Gemini ``generateContent``; streamed answers reassembled), the tool
calls its answer asked for, the events those tools made, and whatever else the
agent did until its next model call. Events before the first model call form
a ``setup`` step. Every event of the run is in exactly one step, none is dropped.

How events are placed, in ``seq`` order:

- an event nested in another (``parent``) goes where its outermost parent went;
- a model call (not nested) opens a step;
- a tool event (``tool:NAME``: a decorated tool, an MCP ``tools/call``) goes to
  the most recent step whose answer asked for a tool of that name and has not had
  it run yet (arguments equal preferred; the step of the event's own task or an
  ancestor task first; a tool of another name with equal arguments last: a
  framework may name a tool otherwise than the function), and is linked to that
  tool call;
- anything else goes to the most recent step of its own task or an ancestor
  task (a tool run in a child task of ``asyncio.gather`` belongs to the step that
  asked for it), else to the most recent step, else to ``setup``.

A tool call is linked to its result through the provider's ids: the later model
call whose request carries the result (``tool_call_id``, ``call_id``,
``tool_use_id``, Gemini's ``functionResponse`` id, else its name in order) is its
``result_seq``. Usage (tokens, cost) is each step's model calls' own
(:mod:`replay._analysis.usage`); ``total`` runs over the steps so far.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from replay._analysis.context import conversations
from replay._analysis.source import Source, events_of
from replay._analysis.toolcalls import ToolUse
from replay._analysis.usage import ZERO, ModelCall, Prices, Usage, model_call
from replay._cassette.events import Event

TOOL_WINDOW = 64
"""Steps still waiting for a tool event that a tool event is looked for in (the latest)."""


class StepKind(enum.Enum):
    """What a step is."""

    SETUP = "setup"
    """What the run did before its first model call (a run without model calls: everything)."""
    MODEL = "model"
    """A model call, the tool calls its answer asked for and what followed until the next."""


@dataclass(frozen=True, slots=True)
class StepTool:
    """A tool call a step's model answer asked for, and what became of it."""

    call: ToolUse
    """What the model asked: call id, tool name, arguments."""
    event: Event | None = None
    """The tool event that ran it, when one was recorded (a decorated tool, an MCP call)."""
    result_seq: int | None = None
    """The later model call whose request carries the result back (linked by call id)."""


@dataclass(frozen=True, slots=True)
class Step:
    """One agent step: a model call and what it set off (see :func:`steps`)."""

    index: int
    """Position in the run, from 0 (the setup step, when there is one, is 0)."""
    kind: StepKind
    """``setup`` or ``model``."""
    event: Event | None
    """The model call's event (None for the setup step)."""
    call: ModelCall | None
    """The model call as read (provider, model, messages, answer, usage); None for setup."""
    tools: tuple[StepTool, ...]
    """The tool calls the answer asked for, in the answer's order."""
    events: tuple[Event, ...]
    """Every event of the step in ``seq`` order: the model call, tool events, events
    nested in them, and the rest."""
    task: str
    """The logical task of the model call (of the first event for setup)."""
    start_ns: int
    """Start of the step's first event, ns from the run's start."""
    end_ns: int
    """End of the step's last event to finish."""
    usage: Usage | None
    """Tokens and cost of the step's model calls (its own, and any nested in its tools);
    None when none reports usage."""
    total: Usage
    """Tokens and cost of every step up to and including this one (``cost_usd`` None
    once a model's price is unknown)."""
    conversation: int | None = None
    """The conversation the model call belongs to (see :mod:`replay._analysis.context`)."""

    @property
    def seq(self) -> int:
        """The model call's event number (the first event's for setup)."""
        if self.event is not None:
            return self.event.seq
        return self.events[0].seq if self.events else -1

    @property
    def duration_ns(self) -> int:
        """Wall time the step spans."""
        return self.end_ns - self.start_ns

    @property
    def tool_events(self) -> tuple[Event, ...]:
        """The events that ran the requested tool calls."""
        return tuple(t.event for t in self.tools if t.event is not None)

    @property
    def errors(self) -> tuple[Event, ...]:
        """The step's events that raised (a failed model call, a tool's exception)."""
        return tuple(e for e in self.events if e.error is not None)

    @property
    def top(self) -> tuple[Event, ...]:
        """The step's events not nested in another event of the step."""
        seqs = {e.seq for e in self.events}
        return tuple(e for e in self.events if e.parent is None or e.parent not in seqs)

    def children(self, seq: int) -> tuple[Event, ...]:
        """The events nested directly in event ``seq`` (``parent == seq``)."""
        return tuple(e for e in self.events if e.parent == seq)

    @property
    def name(self) -> str:
        """A short title: ``setup``, or the model and the tools it asked for."""
        if self.call is None:
            return "setup"
        model = self.call.model or self.call.served_model or self.call.provider
        asked = ", ".join(t.call.name for t in self.tools)
        return f"{model} -> {asked}" if asked else f"{model}: answer"


# -- reading ---------------------------------------------------------------------
def _norm(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _args_equal(ev: Event, use: ToolUse) -> bool:
    req = ev.request
    args = req.get("args") if isinstance(req, dict) else None
    return args is not None and _norm(args) == _norm(use.parsed())


def _in_lineage(task: str, ancestor: str) -> bool:
    return task == ancestor or task.startswith(ancestor + "/")


class _Open:
    """A step being built."""

    def __init__(self, ev: Event | None, call: ModelCall | None) -> None:
        self.event = ev
        self.call = call
        self.tools: list[StepTool] = [StepTool(u) for u in (call.tool_calls if call else ())]
        self.events: list[Event] = []

    @property
    def task(self) -> str:
        ev = self.event or (self.events[0] if self.events else None)
        return ev.task if ev is not None else "main"


def _root(ev: Event, by_seq: dict[int, Event]) -> int:
    """The seq of ``ev``'s outermost parent among the run's events (its own when none,
    or when its parents form a cycle: a damaged file's)."""
    seen = {ev.seq}
    start = ev.seq
    while ev.parent is not None and ev.parent in by_seq:
        if ev.parent in seen:
            return start
        ev = by_seq[ev.parent]
        seen.add(ev.seq)
    return ev.seq


def _sdk_reads(events: Sequence[Event], by_seq: dict[int, Event], made: dict[int, _Open]
               ) -> dict[int, int]:
    """Reads an SDK made for a model call just before sending it (an idempotency key's
    uuid: ``meta["lib"]``, the call's own call site), by seq -> the model call's seq."""
    out: dict[int, int] = {}
    waiting: dict[str, list[Event]] = {}
    for ev in events:
        if ev.parent is not None and ev.parent in by_seq:
            continue
        queue = waiting.setdefault(ev.task, [])
        if ev.seq in made:
            out.update((e.seq, ev.seq) for e in queue if e.site == ev.site)
            queue.clear()
        elif isinstance(ev.meta, dict) and "lib" in ev.meta and ev.site is not None:
            queue.append(ev)
        else:
            queue.clear()
    return out


def _take_tool(waiting: list[_Open], ev: Event) -> _Open | None:
    """Link tool event ``ev`` to the latest step that asked for it (among the last
    :data:`TOOL_WINDOW` steps with a tool call not yet linked); that step."""
    name = ev.channel.split(":", 1)[1]
    best: tuple[int, int, int] | None = None  # (score, step index, tool index)
    opened = waiting[-TOOL_WINDOW:]
    for si in range(len(opened) - 1, -1, -1):
        step = opened[si]
        for ti, t in enumerate(step.tools):
            same_args = _args_equal(ev, t.call)
            # by name; a tool registered under another name than the model's by arguments
            if t.event is not None or (t.call.name != name and not same_args):
                continue
            score = (4 * (t.call.name == name) + 2 * _in_lineage(ev.task, step.task)
                     + same_args)
            if best is None or score > best[0]:
                best = (score, si, ti)
    if best is None:
        return None
    _, si, ti = best
    step = opened[si]
    step.tools[ti] = StepTool(step.tools[ti].call, ev)
    if all(t.event is not None for t in step.tools):
        waiting.remove(step)
    return step


def _owner(latest: dict[str, _Open], opened: list[_Open], ev: Event) -> _Open | None:
    """The latest step of ``ev``'s task or an ancestor task (``latest``: the latest step
    by task), else the latest step."""
    parts = ev.task.split("/")
    found = [latest[t] for t in ("/".join(parts[:n]) for n in range(len(parts), 0, -1))
             if t in latest]
    if found:
        return max(found, key=lambda s: s.event.seq if s.event is not None else -1)
    return opened[-1] if opened[-1].event is not None else None


def _link_results(opened: list[_Open]) -> None:
    """Set each tool call's ``result_seq``: the first later call carrying its result,
    by call id, else (a result without an id, as Gemini's automatic function calling
    sends) by tool name, the most recent step first."""
    for si, step in enumerate(opened):
        if step.call is None or step.event is None:
            continue
        for res in step.call.tool_results:
            found = _find(opened[:si], res.id, None)
            if found is None and res.name is not None:
                found = _find(opened[:si], res.id, res.name)
            if found is not None:
                earlier, ti = found
                t = earlier.tools[ti]
                earlier.tools[ti] = StepTool(t.call, t.event, step.event.seq)


def _find(opened: list[_Open], rid: str | None, name: str | None) -> tuple[_Open, int] | None:
    """The latest step's first unanswered tool call with call id ``rid`` (``name``
    None), or named ``name`` when one of the two ids is missing."""
    for step in reversed(opened):
        for ti, t in enumerate(step.tools):
            if t.result_seq is not None:
                continue
            if name is None:
                hit = rid is not None and t.call.id == rid
            else:
                hit = (rid is None or t.call.id is None) and t.call.name == name
            if hit:
                return step, ti
    return None


def steps(source: Source, *, prices: Prices | None = None) -> list[Step]:
    """A run's events grouped into agent steps, in run order (see the module's doc).

    ``source`` is a cassette path (a damaged file gives what it holds), a
    :class:`Cassette` or a list of events; ``prices`` overrides model prices.
    """
    events = events_of(source, "steps")

    def read(ev: Event) -> ModelCall | None:
        return model_call(ev, prices) if ev.channel.startswith("http") else None
    return group(events, read)


def group(events: Sequence[Event], read: Callable[[Event], ModelCall | None]) -> list[Step]:
    """:func:`steps` of ``events`` (in ``seq`` order), model calls read by ``read``
    (the diff passes its cache)."""
    by_seq = {e.seq: e for e in events}
    calls = [(ev, call) for ev in events if (ev.parent is None or ev.parent not in by_seq)
             and (call := read(ev)) is not None]
    made = {ev.seq: _Open(ev, call) for ev, call in calls}
    early = _sdk_reads(events, by_seq, made)
    setup = _Open(None, None)
    opened: list[_Open] = [setup]
    owner: dict[int, _Open] = {}
    latest: dict[str, _Open] = {}  # the latest step by its model call's task
    waiting: list[_Open] = []  # steps with a tool call no tool event is linked to yet
    seen: set[int] = set()
    nested: list[Event] = []
    for ev in events:
        step: _Open | None
        if _root(ev, by_seq) != ev.seq:
            nested.append(ev)  # placed with its outermost parent, below
            continue
        if ev.seq in made or ev.seq in early:
            step = made[early.get(ev.seq, ev.seq)]
            if id(step) not in seen:
                seen.add(id(step))
                opened.append(step)
                latest[step.task] = step
                if step.tools:
                    waiting.append(step)
        else:
            step = _take_tool(waiting, ev) if ev.channel.startswith("tool:") else None
            step = step or _owner(latest, opened, ev) or setup
        step.events.append(ev)
        owner[ev.seq] = step
    for ev in nested:
        owner.get(_root(ev, by_seq), setup).events.append(ev)
    for step in opened:
        step.events.sort(key=lambda e: e.seq)
    _link_results(opened)
    convs = conversations(calls)
    out: list[Step] = []
    total = ZERO
    for step in opened:
        if step.event is None and not step.events:
            continue
        used = [u for u in (read(e) if e is not step.event else step.call
                            for e in step.events) if u is not None and u.usage is not None]
        usage: Usage | None = None
        for u in used:
            assert u.usage is not None
            usage = u.usage if usage is None else usage + u.usage
        if usage is not None:
            total = total + usage
        out.append(Step(
            index=len(out), kind=StepKind.MODEL if step.event is not None else StepKind.SETUP,
            event=step.event, call=step.call, tools=tuple(step.tools),
            events=tuple(step.events), task=step.task,
            start_ns=min(e.start_ns for e in step.events),
            end_ns=max(e.start_ns + e.duration_ns for e in step.events),
            usage=usage, total=total,
            conversation=convs[step.event.seq][0] if step.event is not None else None))
    return out
