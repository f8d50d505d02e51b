"""Diff two runs step by step: a run that inserted one tool call shows one inserted step.

Each run is grouped into agent steps (:mod:`replay._analysis.steps`). Steps are
aligned as a longest common subsequence on what they did: their kind and the
names of the tools their model's answer asked for, in order. In each gap left
over, steps of the same kind pair up in order as *changed*; the rest are
*only-left* / *only-right*. The events of each aligned pair of steps are then
diffed as the run diff does (:mod:`replay._analysis.diff`: streams per task and
channel, the noise / input / behaviour model of :mod:`replay._analysis.compare`).

After an inserted step, every later model call resends what that step added (the
model's tool calls and their results), so its request differs. When a model
call's request differs only in its messages, and every message that differs was
added to its conversation by an inserted (or removed) step, the step is
*shifted*: counted as the same, reported as ``same (context shifted)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from replay._analysis.align import lcs
from replay._analysis.compare import Comparer, Kind, RunNoise, path_keys
from replay._analysis.context import Message, context_diffs, context_of
from replay._analysis.diff import _align_runs, _Ctx, _kept, _load
from replay._analysis.rundiff import AlignedPair, DiffStatus
from replay._analysis.steps import Step, group
from replay._analysis.usage import Prices
from replay._cassette import Cassette
from replay._cassette.events import Event

_CONTEXT_KEYS = ("messages", "input", "contents", "instructions", "system",
                 "systemInstruction", "system_instruction")
"""Request body keys holding a model call's context, per API."""


@dataclass(frozen=True, slots=True)
class StepPair:
    """A step of each run (or of one) and how they differ."""

    left: Step | None
    """The left run's step, None when only the right run has it."""
    right: Step | None
    """The right run's step."""
    status: DiffStatus
    """``same``, ``changed``, ``only-left`` or ``only-right``."""
    kind: Kind
    """The largest kind among its event pairs (a shifted context left out)."""
    pairs: tuple[AlignedPair, ...] = ()
    """The two steps' events aligned (the run diff's rows, for these events only)."""
    shifted: bool = False
    """True when its model call's context differs only by what inserted or removed
    steps added to the conversation."""
    noise_counts: bool = False
    """True when made with ``include_noise``."""

    @property
    def differs(self) -> bool:
        """True when the pair counts as a difference (noise aside, unless ``include_noise``)."""
        return self.status is not DiffStatus.SAME and self.kind is not Kind.SAME and (
            self.kind is not Kind.NOISE or self.noise_counts)

    @property
    def name(self) -> str:
        """The step's name (the left one's when both exist)."""
        step = self.left if self.left is not None else self.right
        assert step is not None
        return step.name

    def what(self) -> str:
        """What differs, in a few words."""
        if self.status is DiffStatus.ONLY_LEFT:
            return "only in the left run"
        if self.status is DiffStatus.ONLY_RIGHT:
            return "only in the right run"
        if not self.differs:
            return "same (context shifted)" if self.shifted else "same"
        first = next((p for p in self.pairs if p.differs and not (
            self.shifted and _is_call(p, self))), None)
        if first is None:
            return "changed"
        seq = first.left_seq if first.left is not None else first.right_seq
        what = "model call" if _is_call(first, self) else first.channel
        return f"#{seq} {what}: {first.what()}"


@dataclass(frozen=True, slots=True)
class StepDiff:
    """Two runs aligned step by step; ``replay.step_diff(a, b)`` makes one."""

    left_name: str
    """The left run."""
    right_name: str
    """The right run."""
    pairs: tuple[StepPair, ...]
    """Every aligned step, in run order."""
    include_noise: bool = False
    """True when noise counts as a difference."""

    @property
    def first_divergence(self) -> StepPair | None:
        """The first step pair that differs."""
        return next((p for p in self.pairs if p.differs), None)

    @property
    def same(self) -> bool:
        """True when no step differs."""
        return self.first_divergence is None

    def counts(self) -> dict[str, int]:
        """Step pairs per status (``moved`` is never used for steps)."""
        out = {s.value: 0 for s in DiffStatus if s is not DiffStatus.MOVED}
        for p in self.pairs:
            out[(p.status if p.differs or p.status is not DiffStatus.CHANGED
                 else DiffStatus.SAME).value] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        """The ``steps`` section of ``replay diff --json`` (docs/diff.md)."""
        return step_diff_json(self)

    def report(self, *, include_same: bool = False) -> str:
        """The step section of ``replay diff``'s report."""
        return "\n".join(step_diff_lines(self, include_same=include_same))


def _is_call(p: AlignedPair, sp: StepPair) -> bool:
    return (sp.left is not None and p.left is sp.left.event) or (
        sp.right is not None and p.right is sp.right.event)


def _key(step: Step) -> tuple[str, tuple[str, ...]]:
    return (step.kind.value, tuple(t.call.name for t in step.tools))


def _kind_key(step: Step) -> str:
    return step.kind.value


def _produced(found: Sequence[Step]) -> dict[int, set[Message]]:
    """Messages each step's model call handed on: what the next call of its conversation
    added, by step index."""
    calls = [(s.event, s.call) for s in found if s.event is not None and s.call is not None]
    index = {s.event.seq: s.index for s in found if s.event is not None}
    out: dict[int, set[Message]] = {}
    for seq, d in context_diffs(calls).items():
        if d.previous_seq is not None and seq in index:
            out.setdefault(index[d.previous_seq], set()).update(
                (c.role, c.text) for c in d.added)
    return out


def _context_only(pair: AlignedPair) -> bool:
    """True when every significant change of a model-call pair is in its request's context."""
    changes = pair.significant()
    return bool(changes) and all(
        keys[:2] == ["request", "body"] and len(keys) > 2 and keys[2] in _CONTEXT_KEYS
        for keys in (path_keys(c.path) for c in changes))


def _shifted(left: Step, right: Step, extra_left: set[Message], extra_right: set[Message],
             comparer: Comparer) -> bool:
    """Whether the two calls' contexts, noise values blanked out, differ only in
    messages that inserted or removed steps handed on."""
    if left.call is None or right.call is None:
        return False
    a = [_norm(comparer.left, m) for m in context_of(left.call)]
    b = [_norm(comparer.right, m) for m in context_of(right.call)]
    pairs = lcs(a, b)
    ia = {i for i, _ in pairs}
    ib = {j for _, j in pairs}
    return (all(m in extra_left for i, m in enumerate(a) if i not in ia)
            and all(m in extra_right for j, m in enumerate(b) if j not in ib))


def _norm(noise: RunNoise, m: Message) -> Message:
    return (m[0], str(noise.normalize(m[1])))


def align_steps(left: Sequence[Step], right: Sequence[Step],
                compare: Callable[[list[Event], list[Event]], list[AlignedPair]],
                comparer: Comparer, include_noise: bool = False) -> list[StepPair]:
    """Align two runs' steps and diff each pair's events with ``compare``
    (``comparer`` holds both runs' noise values)."""
    matched: list[tuple[Step, Step]] = []
    only_left: list[Step] = []
    only_right: list[Step] = []
    pi = pj = 0
    for i, j in [*lcs([_key(s) for s in left], [_key(s) for s in right]),
                 (len(left), len(right))]:
        gl, gr = list(left[pi:i]), list(right[pj:j])
        taken_l: set[int] = set()
        taken_r: set[int] = set()
        for a, b in lcs([_kind_key(s) for s in gl], [_kind_key(s) for s in gr]):
            matched.append((gl[a], gr[b]))
            taken_l.add(a)
            taken_r.add(b)
        only_left += [s for k, s in enumerate(gl) if k not in taken_l]
        only_right += [s for k, s in enumerate(gr) if k not in taken_r]
        if i < len(left):
            matched.append((left[i], right[j]))
        pi, pj = i + 1, j + 1
    prod_l, prod_r = _produced(left), _produced(right)
    extra_l = {_norm(comparer.left, m) for s in only_left for m in prod_l.get(s.index, ())}
    extra_r = {_norm(comparer.right, m) for s in only_right for m in prod_r.get(s.index, ())}
    out: list[StepPair] = []
    for ls, rs in matched:
        rows = compare(list(ls.events), list(rs.events))
        shifted = False
        kinds: list[Kind] = []
        for row in rows:
            if row.status is DiffStatus.SAME:
                continue
            if (row.left is ls.event and row.right is rs.event and _context_only(row)
                    and (extra_l or extra_r) and _shifted(ls, rs, extra_l, extra_r, comparer)):
                shifted = True
                continue
            kinds.append(row.kind)
        kind = max(kinds, key=lambda k: k.rank, default=Kind.SAME)
        status = DiffStatus.SAME if all(r.status is DiffStatus.SAME for r in rows) \
            else DiffStatus.CHANGED
        out.append(StepPair(ls, rs, status, kind, tuple(rows), shifted, include_noise))
    for s in only_left:
        out.append(StepPair(s, None, DiffStatus.ONLY_LEFT, Kind.BEHAVIOUR,
                            tuple(compare(list(s.events), [])), noise_counts=include_noise))
    for s in only_right:
        out.append(StepPair(None, s, DiffStatus.ONLY_RIGHT, Kind.BEHAVIOUR,
                            tuple(compare([], list(s.events))), noise_counts=include_noise))
    return _in_order(out)


def _in_order(pairs: list[StepPair]) -> list[StepPair]:
    """Left order; a right-only step goes after the pair holding the right step before it."""
    left_of = {p.right.index: p.left.index for p in pairs
               if p.left is not None and p.right is not None}

    def key(p: StepPair) -> tuple[float, int]:
        if p.left is not None:
            return (p.left.index, 0)
        assert p.right is not None
        before = max((r for r in left_of if r < p.right.index), default=None)
        return ((left_of[before] if before is not None else -1) + 0.5, p.right.index)
    return sorted(pairs, key=key)


def step_diff(a: str | os.PathLike[str] | Cassette | Iterable[Event],
              b: str | os.PathLike[str] | Cassette | Iterable[Event], *,
              ignore: Iterable[str] = (), ignore_channels: Iterable[str] = (),
              include_noise: bool = False, prices: Prices | None = None,
              allow_damaged: bool = False) -> StepDiff:
    """Align run ``a`` (left) with run ``b`` (right) step by step; the options are
    :func:`replay.diff`'s."""
    left_name, left = _load(a, "left", allow_damaged)
    right_name, right = _load(b, "right", allow_damaged)
    skip = tuple(ignore_channels)
    ctx = _Ctx(tuple(ignore), prices, Comparer(left, right), include_noise)
    kept_l, kept_r = _kept(left, skip), _kept(right, skip)
    pairs = align_steps(group(kept_l, ctx.call), group(kept_r, ctx.call),
                        lambda ls, rs: _align_runs(ctx, ls, rs), ctx.comparer, include_noise)
    return StepDiff(left_name, right_name, tuple(pairs), include_noise)


# -- renderings ---------------------------------------------------------------------
_MARK = {"same": "=", "changed": "~", "only-left": "-", "only-right": "+"}


def _side(step: Step | None) -> dict[str, Any] | None:
    if step is None:
        return None
    return {"index": step.index, "seq": step.seq, "name": step.name,
            "kind": step.kind.value, "events": [e.seq for e in step.events],
            "usage": step.usage.as_dict() if step.usage is not None else None}


def step_diff_json(d: StepDiff) -> dict[str, Any]:
    """The ``steps`` section of ``replay diff --json``."""
    first = d.first_divergence
    return {
        "left": sum(p.left is not None for p in d.pairs),
        "right": sum(p.right is not None for p in d.pairs),
        "counts": d.counts(),
        "first_divergence": d.pairs.index(first) if first is not None else None,
        "pairs": [{"status": p.status.value if p.differs or p.status is not
                   DiffStatus.CHANGED else "same",
                   "kind": p.kind.value, "shifted": p.shifted, "what": p.what(),
                   "left": _side(p.left), "right": _side(p.right),
                   "differing_events": [[r.left_seq, r.right_seq] for r in p.pairs
                                        if r.differs]}
                  for p in d.pairs],
    }


def step_diff_lines(d: StepDiff, *, include_same: bool = False) -> list[str]:
    """The step section of ``replay diff``'s report."""
    counts = d.counts()
    parts = [f"{n} {k}" for k, n in counts.items() if n]
    left = sum(p.left is not None for p in d.pairs)
    right = sum(p.right is not None for p in d.pairs)
    lines = [f"steps: {left} left, {right} right: {', '.join(parts) or 'none'}"]
    for p in d.pairs:
        if not (include_same or p.differs or p.status in (DiffStatus.ONLY_LEFT,
                                                         DiffStatus.ONLY_RIGHT)):
            continue
        status = p.status.value if p.differs or p.status is not DiffStatus.CHANGED \
            else "same"
        ls = f"{p.left.index}" if p.left is not None else "-"
        rs = f"{p.right.index}" if p.right is not None else "-"
        kind = p.kind.value if p.differs else ""
        lines.append(f"  step {ls:>3} {_MARK[status]} {rs:<3} {kind:<9} {p.name}: {p.what()}")
    return lines

