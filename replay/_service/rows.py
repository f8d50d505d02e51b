"""The index row of a run, read back from its cassette (models, tools, tokens, cost)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from replay._analysis.usage import ZERO, Usage, model_call
from replay._cassette import read_cassette
from replay._runs.store import RunRow, RunStatus, run_id_of


def row_of(path: str, *, run_id: str, entry: str, start: float, duration: float,
           status: RunStatus, error: str | None = None, tags: tuple[str, ...] = (),
           attrs: Mapping[str, str] | None = None) -> RunRow:
    """The row of the run whose cassette is at ``path`` (a damaged one is read as far
    as it goes)."""
    cassette = read_cassette(path, strict=False)
    models: dict[str, None] = {}
    tools: dict[str, None] = {}
    usage: Usage = ZERO
    for ev in sorted(cassette.events, key=lambda e: e.seq):
        if ev.channel.startswith("tool:"):
            tools[ev.channel[5:]] = None
            continue
        call = model_call(ev)
        if call is None:
            continue
        model = call.model or call.served_model
        if model:
            models[model] = None
        if call.usage is not None:
            usage = usage + call.usage
    return RunRow(id=run_id, entry=entry, start=start, duration=duration, status=status,
                  error=error, models=tuple(models), tools=tuple(tools),
                  input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                  cost=usage.cost_usd if usage.calls else None, tags=tags,
                  attrs=dict(attrs or {}))


def crashed_row(path: str) -> RunRow:
    """The row of a crashed writer's leftover ``.partial``: what its header says of the
    run, and the events it completed."""
    cassette = read_cassette(path, strict=False)
    meta = cassette.header.meta
    info = meta.get("run") if isinstance(meta.get("run"), dict) else {}
    assert isinstance(info, dict)
    start = info.get("start")
    start = float(start) if isinstance(start, int | float) else time.time()
    end_ns = max((e.start_ns + e.duration_ns for e in cassette.events), default=0)
    raw_tags = info.get("tags")
    tags = tuple(str(t) for t in raw_tags) if isinstance(raw_tags, list) else ()
    raw_attrs = info.get("attrs")
    attrs = {str(k): str(v) for k, v in raw_attrs.items()} if isinstance(raw_attrs, dict) else {}
    n = len(cassette.events)
    return row_of(path, run_id=str(info.get("id") or run_id_of(path)),
                  entry=str(info.get("entry") or "?"), start=start, duration=end_ns / 1e9,
                  status=RunStatus.CRASHED, tags=tags, attrs=attrs,
                  error=f"the process died after {n} event{'s' if n != 1 else ''}")
