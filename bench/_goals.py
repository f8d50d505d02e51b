"""Machine-readable goal lines, shared by the bench scripts and ``run_all.py``.

A script that measures a goal prints, beside its human tables, one line

    GOAL {"id": "http.replay_vs_vcrpy", "value": 412.0, "target": 100, "op": ">=", ...}

``run_all.py`` collects those lines into the goals table of
docs/performance.md (and leaves them out of the script's own section).
"""

from __future__ import annotations

import json
import math
from typing import Any

PREFIX = "GOAL "


def goal(gid: str, value: float, target: float, op: str, *, what: str, unit: str = "",
         detail: str = "") -> bool:
    """Print one goal line; True when ``value op target`` holds (``op``: ``<=`` or ``>=``).

    ``what`` names the measured figure (``vcrpy-yaml / agent-replay replay time
    per request``), ``unit`` its unit (``x``, ``ms``), ``detail`` what else a
    reader needs (the N it was taken at, the other side's absolute figure).
    """
    if op not in ("<=", ">="):
        raise ValueError(f"op must be <= or >=, not {op!r}")
    met = math.isfinite(value) and (value <= target if op == "<=" else value >= target)
    line: dict[str, Any] = {"id": gid, "value": value, "target": target, "op": op,
                            "met": met, "what": what, "unit": unit, "detail": detail}
    print(PREFIX + json.dumps(line), flush=True)
    return met


def parse(text: str) -> tuple[list[dict[str, Any]], str]:
    """(goal records, the text without the goal lines) of a script's output."""
    goals: list[dict[str, Any]] = []
    kept: list[str] = []
    for line in text.splitlines():
        if line.startswith(PREFIX):
            try:
                rec = json.loads(line[len(PREFIX):])
            except ValueError:
                kept.append(line)
                continue
            if isinstance(rec, dict) and "id" in rec:
                goals.append(rec)
                continue
        kept.append(line)
    return goals, "\n".join(kept)
