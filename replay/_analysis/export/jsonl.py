"""A run as JSON Lines, for scripts (``replay export jsonl``).

One object per line, each with a ``type``: first the ``run`` (header, totals),
then one ``step`` per agent step (:mod:`replay._analysis.steps`), then one
``event`` per event in ``seq`` order (the map of docs/cassette-format.md, bytes as
``{"$text"}``/``{"$bytes"}``, plus the ``step`` it belongs to and, for a model
call, ``model_call`` as ``show --json`` gives it). Everything is redacted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import IO, Any

from replay._analysis.export.calls import call_json, calls_of, total_json
from replay._analysis.steps import Step, steps
from replay._cassette import Cassette, read_cassette
from replay._cassette.jsonable import event_json, jsonable
from replay._cassette.redacted import shown


def load_shown(run: str | os.PathLike[str] | Cassette) -> Cassette:
    """A run to export, redacted with the default rules (a damaged file: what it holds)."""
    cassette = run if isinstance(run, Cassette) else read_cassette(run, strict=False)
    return shown(cassette)


def step_json(step: Step) -> dict[str, Any]:
    """One step as a JSON object (the ``step`` lines)."""
    return {"type": "step", "index": step.index, "kind": step.kind.value, "name": step.name,
            "seq": step.seq, "task": step.task, "start_ns": step.start_ns,
            "end_ns": step.end_ns, "events": [e.seq for e in step.events],
            "usage": step.usage.as_dict() if step.usage is not None else None,
            "total": step.total.as_dict(),
            "tools": [{"id": t.call.id, "name": t.call.name, "arguments": t.call.arguments,
                       "event": t.event.seq if t.event is not None else None,
                       "result_seq": t.result_seq} for t in step.tools]}


def records(cassette: Cassette, run_steps: Sequence[Step] | None = None
            ) -> Iterator[dict[str, Any]]:
    """The JSON objects of a (redacted) run, in file order."""
    events = sorted(cassette.events, key=lambda e: e.seq)
    if run_steps is None:
        run_steps = steps(events)
    calls = calls_of(events)
    h = cassette.header
    yield {"type": "run", "version": h.version, "created": h.created, "argv": list(h.argv),
           "python": h.python, "platform": h.platform, "meta": jsonable(dict(h.meta)),
           "events": len(events), "steps": len(run_steps),
           "usage": total_json(calls.values()),
           "damage": str(cassette.damage) if cassette.damage else None}
    owner: dict[int, int] = {}
    for step in run_steps:
        owner.update((e.seq, step.index) for e in step.events)
        yield jsonable(step_json(step))
    for ev in events:
        row = {"type": "event", **event_json(ev), "step": owner.get(ev.seq)}
        if ev.seq in calls:
            row["model_call"] = jsonable(call_json(ev, calls[ev.seq]))
        yield row


def write_jsonl(run: str | os.PathLike[str] | Cassette, out: IO[str]) -> int:
    """Write ``run`` as JSON Lines to ``out``; how many lines."""
    n = 0
    for obj in records(load_shown(run)):
        out.write(json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n")
        n += 1
    return n
