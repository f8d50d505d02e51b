"""Rendering diffs and drift reports: the readable reports and the diff JSON document.

The JSON document is versioned (``"schema": "agent-replay/diff/2"``) and
specified in docs/diff.md; fields are only ever added within a version.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from replay._analysis.compare import Kind
from replay._analysis.summary import brief, summarize
from replay._analysis.usage import Usage
from replay._cassette.difftext import change_lines
from replay._cassette.events import Event
from replay._cassette.jsonable import jsonable
from replay._cassette.structdiff import Change


class DiffStatus(enum.Enum):
    """How an event of one run relates to the other run."""

    SAME = "same"
    """Equal request and equal answer, at the matching position."""
    CHANGED = "changed"
    """The same call with a different request, or an equal request answered differently."""
    ONLY_LEFT = "only-left"
    """In the left run only (the right run never asked for it)."""
    ONLY_RIGHT = "only-right"
    """In the right run only."""
    MOVED = "moved"
    """An equal request asked for at another position (or by another task)."""


@dataclass(frozen=True, slots=True)
class AlignedPair:
    """One row of the side-by-side diff: an event of each run (or of one) and how they differ."""

    left: Event | None
    """The left run's event, None when only the right run has it."""
    right: Event | None
    """The right run's event, None when only the left run has it."""
    status: DiffStatus
    """How the two relate."""
    changes: tuple[Change, ...] = ()
    """Structural differences left -> right; paths start with ``request``,
    ``response`` or ``error`` (a JSON body is compared as parsed JSON, a model
    answer streamed as SSE as the answer it assembles to)."""
    prompt_diff: str = ""
    """For model calls whose prompt differs: unified diff of the message texts."""
    output_diff: str = ""
    """For model calls whose answer text differs: unified diff of the answers."""
    left_usage: Usage | None = None
    """Token counts and cost of the left event, when it is a model call reporting them."""
    right_usage: Usage | None = None
    """Same for the right event."""
    kind: Kind = Kind.SAME
    """What the difference means: noise, an input change or a behaviour change
    (:mod:`replay._analysis.compare`); ``SAME`` for equal events."""
    change_kinds: tuple[Kind, ...] = ()
    """The kind of each of ``changes``, in order."""
    noise_counts: bool = False
    """True when the diff was made with ``include_noise``: noise then counts as a difference."""

    @property
    def event(self) -> Event:
        """The left event, else the right one."""
        ev = self.left if self.left is not None else self.right
        assert ev is not None
        return ev

    @property
    def channel(self) -> str:
        """Channel of the pair (the left event's when both exist)."""
        return self.event.channel

    @property
    def task(self) -> str:
        """Logical task of the pair (the left event's when both exist)."""
        return self.event.task

    @property
    def left_seq(self) -> int | None:
        """Event number in the left run."""
        return self.left.seq if self.left is not None else None

    @property
    def right_seq(self) -> int | None:
        """Event number in the right run."""
        return self.right.seq if self.right is not None else None

    @property
    def duration_delta_ns(self) -> int | None:
        """Right duration minus left duration, when both exist."""
        if self.left is None or self.right is None:
            return None
        return self.right.duration_ns - self.left.duration_ns

    @property
    def start_delta_ns(self) -> int | None:
        """Right start minus left start (from each run's start), when both exist."""
        if self.left is None or self.right is None:
            return None
        return self.right.start_ns - self.left.start_ns

    @property
    def differs(self) -> bool:
        """True when the pair counts as a difference: not ``SAME``, and not noise
        (unless the diff was made with ``include_noise``)."""
        return self.status is not DiffStatus.SAME and (
            self.kind is not Kind.NOISE or self.noise_counts)

    @property
    def is_noise(self) -> bool:
        """True when the events differ, but only in noise."""
        return self.status is not DiffStatus.SAME and self.kind is Kind.NOISE

    def significant(self) -> tuple[Change, ...]:
        """The changes that are not noise (every change when kinds are unknown)."""
        if len(self.change_kinds) != len(self.changes):
            return self.changes
        return tuple(c for c, k in zip(self.changes, self.change_kinds, strict=True)
                     if k is not Kind.NOISE)

    def what(self) -> str:
        """What differs, in a few words."""
        if self.status is DiffStatus.ONLY_LEFT:
            return "only in the left run"
        if self.status is DiffStatus.ONLY_RIGHT:
            return "only in the right run"
        shown = self.significant() or self.changes
        roots = {c.path.split(".", 1)[0].split("[", 1)[0] for c in shown}
        parts = [p for p in ("request", "response", "error") if p in roots]
        if self.status is DiffStatus.MOVED:
            return "moved" + (f", {' and '.join(parts)} changed" if parts else "")
        if self.status is DiffStatus.CHANGED:
            return f"{' and '.join(parts) or 'payload'} changed"
        return "same"


@dataclass(frozen=True, slots=True)
class RunDiff:
    """Two runs aligned event by event; ``replay.diff(a, b)`` makes one."""

    left_name: str
    """The left run (its path, or ``<left>``)."""
    right_name: str
    """The right run."""
    pairs: tuple[AlignedPair, ...]
    """Every aligned row, in run order (the left run's, with right-only rows
    placed after the row they follow in the right run)."""
    first_index: int | None
    """Index in ``pairs`` of the first divergence, None when the runs are the same."""
    left_usage: Usage
    """Tokens and cost of every model call of the left run."""
    right_usage: Usage
    """Same for the right run."""
    left_duration_ns: int
    """Time from the left run's start to the end of its last event."""
    right_duration_ns: int
    """Same for the right run."""
    include_noise: bool = False
    """True when noise counts as a difference (``replay diff --include-noise``)."""

    @property
    def same(self) -> bool:
        """True when no pair differs (noise aside, unless made with ``include_noise``)."""
        return self.first_index is None

    @property
    def noise(self) -> tuple[AlignedPair, ...]:
        """The pairs whose events differ only in noise."""
        return tuple(p for p in self.pairs if p.is_noise)

    def kinds(self) -> dict[str, int]:
        """Number of pairs per kind (``same``, ``noise``, ``input``, ``behaviour``)."""
        out = {k.value: 0 for k in Kind}
        for p in self.pairs:
            out[(p.kind if p.status is not DiffStatus.SAME else Kind.SAME).value] += 1
        return out

    @property
    def first_divergence(self) -> AlignedPair | None:
        """The first pair, in run order, that differs: the first input or behaviour change."""
        return self.pairs[self.first_index] if self.first_index is not None else None

    @property
    def differing(self) -> tuple[AlignedPair, ...]:
        """Every pair that differs (noise aside, unless made with ``include_noise``)."""
        return tuple(p for p in self.pairs if p.differs)

    def counts(self) -> dict[str, int]:
        """Number of pairs per status (every status present, zero included)."""
        out = {s.value: 0 for s in DiffStatus}
        for p in self.pairs:
            out[p.status.value] += 1
        return out

    def to_json(self, *, include_same: bool = False) -> dict[str, Any]:
        """The documented JSON document (see docs/diff.md)."""
        return diff_json(self, include_same=include_same)

    def report(self, *, include_same: bool = False, max_changes: int = 12) -> str:
        """The readable report ``replay diff`` prints."""
        return diff_text(self, include_same=include_same, max_changes=max_changes)




SCHEMA = "agent-replay/diff/2"
"""The ``schema`` value of ``replay diff --json`` documents."""
MAX_JSON_TEXT = 2000
"""Strings longer than this in a change's ``old``/``new`` are clipped in JSON."""

_MARK = {"same": "=", "changed": "~", "only-left": "-", "only-right": "+", "moved": ">"}


# -- JSON -------------------------------------------------------------------------
def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_JSON_TEXT:
        return value[:MAX_JSON_TEXT] + f"...({len(value) - MAX_JSON_TEXT} more chars)"
    if isinstance(value, dict):
        return {k: _clip(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clip(v) for v in value]
    return value


def _usage(u: Usage | None) -> dict[str, Any] | None:
    return u.as_dict() if u is not None else None


def usage_delta(left: Usage, right: Usage) -> dict[str, Any]:
    """Right minus left, per count (cost null when either is unknown)."""
    cost = (None if left.cost_usd is None or right.cost_usd is None
            else round(right.cost_usd - left.cost_usd, 8))
    return {"input_tokens": right.input_tokens - left.input_tokens,
            "output_tokens": right.output_tokens - left.output_tokens,
            "cached_tokens": right.cached_tokens - left.cached_tokens,
            "total_tokens": right.total_tokens - left.total_tokens,
            "cost_usd": cost, "calls": right.calls - left.calls}


def _kind(p: AlignedPair) -> str:
    return (p.kind if p.status is not DiffStatus.SAME else Kind.SAME).value


def pair_json(index: int, p: AlignedPair) -> dict[str, Any]:
    """One aligned pair as JSON."""
    kinds = p.change_kinds if len(p.change_kinds) == len(p.changes) else (
        (p.kind,) * len(p.changes))
    return {
        "index": index, "status": p.status.value, "kind": _kind(p), "channel": p.channel,
        "task": p.task, "left_seq": p.left_seq, "right_seq": p.right_seq, "summary": p.what(),
        "changes": [{"path": c.path, "kind": c.kind, "noise": k is Kind.NOISE,
                     "old": _clip(jsonable(c.old)), "new": _clip(jsonable(c.new))}
                    for c, k in zip(p.changes, kinds, strict=True)],
        "prompt_diff": p.prompt_diff or None, "output_diff": p.output_diff or None,
        "duration_delta_ns": p.duration_delta_ns, "start_delta_ns": p.start_delta_ns,
        "left_usage": _usage(p.left_usage), "right_usage": _usage(p.right_usage),
    }


def noise_by_channel(d: RunDiff) -> dict[str, int]:
    """Pairs that differ only in noise, per channel (most first)."""
    out: dict[str, int] = {}
    for p in d.noise:
        out[p.channel] = out.get(p.channel, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def noise_json(d: RunDiff) -> dict[str, Any]:
    """The ``noise`` member: how many pairs differ only in noise, per channel, and
    whether they count as differences (``included``)."""
    return {"pairs": len(d.noise), "channels": noise_by_channel(d),
            "included": d.include_noise}


def diff_json(d: RunDiff, *, include_same: bool = False) -> dict[str, Any]:
    """The ``replay diff --json`` document."""
    def side(name: str, events: int, duration: int, usage: Usage) -> dict[str, Any]:
        return {"name": name, "events": events, "duration_ns": duration,
                "usage": usage.as_dict()}
    first = d.first_index
    return {
        "schema": SCHEMA,
        "same": d.same,
        "left": side(d.left_name, sum(p.left is not None for p in d.pairs),
                     d.left_duration_ns, d.left_usage),
        "right": side(d.right_name, sum(p.right is not None for p in d.pairs),
                      d.right_duration_ns, d.right_usage),
        "counts": d.counts(),
        "kinds": d.kinds(),
        "noise": noise_json(d),
        "first_divergence": pair_json(first, d.pairs[first]) if first is not None else None,
        "usage_delta": usage_delta(d.left_usage, d.right_usage),
        "duration_delta_ns": d.right_duration_ns - d.left_duration_ns,
        "pairs": [pair_json(i, p) for i, p in enumerate(d.pairs)
                  if include_same or p.differs],
    }


# -- text -------------------------------------------------------------------------
def _n(x: int) -> str:
    return f"{x:,}"


def _signed(x: int) -> str:
    return f"{'+' if x >= 0 else '-'}{abs(x):,}"


def _ms(ns: int) -> str:
    return f"{ns / 1e6:+.2f} ms"


def _secs(ns: int) -> str:
    return f"{ns / 1e9:.3f} s"


def _cost(c: float | None) -> str:
    return "$?" if c is None else f"${c:.4f}"


def _side_line(label: str, name: str, events: int, duration: int, u: Usage) -> str:
    line = f"{label}: {name}  {events} events, {_secs(duration)}"
    if u.calls:
        line += (f", {u.calls} model call{'s' * (u.calls != 1)}, {_n(u.total_tokens)} tokens,"
                 f" {_cost(u.cost_usd)}")
    return line


def _where(p: AlignedPair) -> str:
    left = f"left #{p.left_seq}" if p.left is not None else "nothing on the left"
    right = f"right #{p.right_seq}" if p.right is not None else "nothing on the right"
    return f"{left} / {right}"


def _row(p: AlignedPair, width: int = 70) -> str:
    ls = f"#{p.left_seq}" if p.left is not None else "-"
    rs = f"#{p.right_seq}" if p.right is not None else "-"
    timing = f"  ({_ms(p.duration_delta_ns)})" if p.duration_delta_ns else ""
    return (f"{ls:>7} {_MARK[p.status.value]} {rs:<7} {_kind(p):<9} {p.status.value:<10} "
            f"{p.channel:<18} {p.task:<10} {summarize(p.event, width)}{timing}")


def _details(p: AlignedPair, max_changes: int, indent: str = "      ") -> list[str]:
    changes = p.changes if p.noise_counts or p.is_noise else p.significant()
    lines = [f"{indent}{line}" for c in changes[:max_changes]
             for line in change_lines(c, left="left", right="right")]
    if len(changes) > max_changes:
        lines.append(f"{indent}... and {len(changes) - max_changes} more changes")
    if len(changes) < len(p.changes):
        hidden = len(p.changes) - len(changes)
        lines.append(f"{indent}({hidden} noise change{'s' * (hidden != 1)} not shown)")
    for text in (p.prompt_diff, p.output_diff):
        if text:
            body = text.splitlines()
            lines += [f"{indent}{line}" for line in body[:60]]
            if len(body) > 60:
                lines.append(f"{indent}... ({len(body) - 60} more diff lines)")
    if p.left_usage is not None and p.right_usage is not None and (
            p.left_usage.total_tokens != p.right_usage.total_tokens):
        lines.append(f"{indent}tokens {_n(p.left_usage.total_tokens)} -> "
                     f"{_n(p.right_usage.total_tokens)} "
                     f"({_signed(p.right_usage.total_tokens - p.left_usage.total_tokens)})")
    if p.status.value in ("only-left", "only-right") and p.event.error is not None:
        lines.append(f"{indent}raised {p.event.error}")
    return lines


def diff_text(d: RunDiff, *, include_same: bool = False, max_changes: int = 12) -> str:
    """The readable report: both runs, the first divergence, every differing pair, totals."""
    lines = [
        _side_line("left ", d.left_name, sum(p.left is not None for p in d.pairs),
                   d.left_duration_ns, d.left_usage),
        _side_line("right", d.right_name, sum(p.right is not None for p in d.pairs),
                   d.right_duration_ns, d.right_usage),
    ]
    kinds = d.kinds()
    first = d.first_divergence
    noise = len(d.noise)
    if first is None:
        if noise:
            lines.append(f"runs are the same apart from noise: {len(d.pairs)} events aligned, "
                         f"no input or behaviour change")
        else:
            lines.append(f"runs are the same: {len(d.pairs)} events aligned, no difference")
    else:
        counts = {s: 0 for s in _MARK}
        for p in d.differing:
            counts[p.status.value] += 1
        parts = [f"{counts[k]} {k}" for k in ("changed", "moved", "only-left", "only-right")
                 if counts[k]]
        why = [f"{kinds[k]} {k}" for k in ("behaviour", "input") if kinds[k]]
        lines.append(f"runs differ: {', '.join(parts)} ({', '.join(why)}; "
                     f"{kinds['same']} same, {noise} noise)")
        lines.append(f"first divergence: {_where(first)}, {first.channel} "
                     f"(task {first.task}): {first.what()} ({first.kind.value})")
        ev = first.event
        lines.append(f"      {brief(ev.request, 100)}")
        if ev.site is not None:
            lines.append(f"      at {ev.site}")
        lines += _details(first, max_changes)
    if noise:
        per = ", ".join(f"{ch} {n}" for ch, n in noise_by_channel(d).items())
        how = "listed below" if d.include_noise else "--include-noise lists them"
        lines.append(f"noise: {noise} event{'s' * (noise != 1)} differ only in values any two "
                     f"live runs differ in ({per}); {how}")
    shown = [p for p in d.pairs if include_same or p.differs]
    if shown:
        lines.append("")
        for p in shown:
            lines.append(_row(p))
            if p is not first:
                lines += _details(p, max_changes)
    lines.append("")
    lu, ru = d.left_usage, d.right_usage
    if lu.calls or ru.calls:
        delta = usage_delta(lu, ru)
        dc = delta["cost_usd"]
        cost = "" if dc is None else f" ({'+' if dc >= 0 else '-'}${abs(dc):.6f})"
        lines.append(
            f"tokens: {_n(lu.total_tokens)} -> {_n(ru.total_tokens)} "
            f"({_signed(delta['total_tokens'])}); input {_n(lu.input_tokens)} -> "
            f"{_n(ru.input_tokens)}, output {_n(lu.output_tokens)} -> {_n(ru.output_tokens)}; "
            f"cost {_cost(lu.cost_usd)} -> {_cost(ru.cost_usd)}{cost}")
    lines.append(f"time: {_secs(d.left_duration_ns)} -> {_secs(d.right_duration_ns)} "
                 f"({(d.right_duration_ns - d.left_duration_ns) / 1e9:+.3f} s)")
    return "\n".join(lines)
