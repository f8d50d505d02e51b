"""Diff two runs event by event: alignment, first divergence, payload, timing and token deltas.

Each run's events are split into streams, one per (logical task, channel),
ordered by ``seq``. Streams of the same name are aligned on a hash of each
request (see :mod:`replay._analysis.align`): equal requests pair up in order. Events left
over in one run that have an equal request elsewhere in the other are *moved*;
within each gap, leftovers with the same call (same channel and target: URL,
function) pair up as *changed*; the rest are *only-left* / *only-right*. A pair
whose requests are equal but whose answers differ is *changed* too.

Timing is never a difference: start and duration deltas are reported beside.
Response headers that change on every call (dates, request ids, rate-limit
counters) are left out of payload comparisons (:data:`VOLATILE_HEADERS`).

Every pair is classified by :mod:`replay._analysis.compare` as noise, an input
change or a behaviour change; the first divergence is the first pair that is
not noise (unless ``include_noise``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import msgpack

from replay._analysis.align import lcs
from replay._analysis.compare import Comparer, Kind
from replay._analysis.payloads import headers_map, text_diff, view
from replay._analysis.rundiff import AlignedPair, DiffStatus, RunDiff
from replay._analysis.usage import ZERO, ModelCall, Prices, Usage, model_call
from replay._capture.matcher import call_key
from replay._cassette import Cassette, read_cassette
from replay._cassette.events import Event
from replay._cassette.jsonable import short_repr
from replay._cassette.structdiff import diff as structdiff

MAX_CHANGES = 200
"""Most structural changes kept per pair."""


# -- inputs -----------------------------------------------------------------------
def _load(run: Any, side: str, allow_damaged: bool) -> tuple[str, Sequence[Event]]:
    if isinstance(run, Cassette):
        return run.path, run.events
    if isinstance(run, str | os.PathLike):
        cassette = read_cassette(run, strict=not allow_damaged)
        return cassette.path, cassette.events
    events = list(run)
    if not all(isinstance(e, Event) for e in events):
        raise TypeError(f"diff: the {side} run must be a path, a Cassette or a list of events")
    return f"<{side}>", events


def diff(a: str | os.PathLike[str] | Cassette | Iterable[Event],
         b: str | os.PathLike[str] | Cassette | Iterable[Event], *,
         ignore: Iterable[str] = (), ignore_channels: Iterable[str] = (),
         include_noise: bool = False, prices: Prices | None = None,
         allow_damaged: bool = False) -> RunDiff:
    """Align run ``a`` (left) with run ``b`` (right) and say how they differ.

    ``a`` and ``b`` are cassette paths, :class:`Cassette` objects or event lists.
    ``ignore`` lists change paths (prefixes, like ``response.body.id``) that do
    not count as differences; ``ignore_channels`` lists channels (shell patterns:
    ``clock``, ``tool:*``) whose events are left out of the comparison; with
    ``include_noise``, differences in noise (ids, clock and random values) count
    too; ``prices`` overrides the model price table.
    """
    left_name, left = _load(a, "left", allow_damaged)
    right_name, right = _load(b, "right", allow_damaged)
    skip = tuple(ignore_channels)
    ctx = _Ctx(tuple(ignore), prices, Comparer(left, right), include_noise)
    rows = _align_runs(ctx, _kept(left, skip), _kept(right, skip))
    first = next((i for i, p in enumerate(rows) if p.differs), None)
    return RunDiff(left_name, right_name, tuple(rows), first,
                   _total(ctx, left), _total(ctx, right), _span(left), _span(right),
                   include_noise)


def _kept(events: Sequence[Event], skip: tuple[str, ...]) -> list[Event]:
    kept = [e for e in events if not any(fnmatch.fnmatchcase(e.channel, p) for p in skip)]
    return sorted(kept, key=_seq)


def _seq(ev: Event) -> int:
    return ev.seq


def _span(events: Sequence[Event]) -> int:
    return max((e.start_ns + e.duration_ns for e in events), default=0)


def _total(ctx: _Ctx, events: Sequence[Event]) -> Usage:
    total = ZERO
    for ev in events:
        call = ctx.call(ev)
        if call is not None:  # a call that reports no usage still counts as a call
            total = total + (call.usage if call.usage is not None
                             else Usage(calls=1, cost_usd=0.0))
    return total


# -- keys -------------------------------------------------------------------------
def _big_int(obj: Any) -> Any:
    """msgpack's hook for what it cannot pack itself: an int beyond 64 bits."""
    if type(obj) is int:
        return msgpack.ExtType(3, obj.to_bytes((obj.bit_length() + 8) // 8, "big", signed=True))
    raise TypeError(f"cannot pack {type(obj).__name__}")


def _digest(value: Any) -> bytes:
    try:
        packed = msgpack.packb(value, use_bin_type=True, default=_big_int)
    except (TypeError, ValueError, OverflowError):  # not a cassette value, or nested past 511
        packed = short_repr(value, 1 << 30).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(packed, digest_size=16).digest()


def request_key(ev: Event) -> bytes:
    """What makes two requests "equal" for alignment: channel and request, HTTP
    headers left out (SDKs put retry counters and timeouts there)."""
    req = ev.request
    if isinstance(req, dict) and "headers" in req and "url" in req:
        req = {k: v for k, v in req.items() if k != "headers"}
    return _digest((ev.channel, req))


def _answer_key(ev: Event) -> bytes:
    resp = ev.response
    if isinstance(resp, dict) and "headers" in resp:
        resp = {k: v for k, v in resp.items() if k != "headers"}
    err = (ev.error.type, ev.error.message) if ev.error is not None else None
    return _digest((resp, err, [c.data for c in ev.chunks]))


class _Ctx:
    """Per-diff caches and settings."""

    def __init__(self, ignore: tuple[str, ...], prices: Prices | None, comparer: Comparer,
                 include_noise: bool) -> None:
        self.ignore = ignore
        self.prices = prices
        self.comparer = comparer
        self.include_noise = include_noise
        # Keyed by id(ev), each value holding its event: a cassette's events are
        # decoded on demand, so a freed Event's id is soon another's; the held
        # event keeps the id taken, and a hit is checked to be that event.
        self._calls: dict[int, tuple[Event, ModelCall | None]] = {}
        self._req: dict[int, tuple[Event, bytes]] = {}
        self._answer: dict[int, tuple[Event, bytes]] = {}

    def request_key(self, ev: Event) -> bytes:
        hit = self._req.get(id(ev))
        if hit is None or hit[0] is not ev:
            hit = self._req[id(ev)] = (ev, request_key(ev))
        return hit[1]

    def answer_key(self, ev: Event) -> bytes:
        hit = self._answer.get(id(ev))
        if hit is None or hit[0] is not ev:
            hit = self._answer[id(ev)] = (ev, _answer_key(ev))
        return hit[1]

    def event_key(self, ev: Event) -> tuple[bytes, bytes]:
        return (self.request_key(ev), self.answer_key(ev))

    @staticmethod
    def call_key(ev: Event) -> Hashable:
        """The same call: same channel and target (for HTTP: method and URL path, so
        runs against another host or port still pair up)."""
        req = ev.request
        if isinstance(req, dict) and isinstance(req.get("url"), str):
            return (ev.channel, str(req.get("method")), urlsplit(str(req["url"])).path)
        return call_key(ev.channel, ev.request)

    def call(self, ev: Event) -> ModelCall | None:
        hit = self._calls.get(id(ev))
        if hit is None or hit[0] is not ev:
            hit = self._calls[id(ev)] = (ev, model_call(ev, self.prices)
                                         if ev.channel.startswith("http") else None)
        return hit[1]


# -- alignment --------------------------------------------------------------------
def _streams(events: Sequence[Event]) -> dict[tuple[str, str], list[Event]]:
    out: dict[tuple[str, str], list[Event]] = {}
    for ev in events:
        out.setdefault((ev.task, ev.channel), []).append(ev)
    return out


Gap = tuple[list[Event], list[Event]]


def _split(ls: list[Event], rs: list[Event], key: Callable[[Event], Hashable]
           ) -> tuple[list[tuple[Event, Event]], list[Gap]]:
    """Pairs of a longest common subsequence of ``ls`` and ``rs`` by ``key``, and the gaps."""
    matched: list[tuple[Event, Event]] = []
    gaps: list[Gap] = []
    pi = pj = 0
    for i, j in [*lcs([key(e) for e in ls], [key(e) for e in rs]), (len(ls), len(rs))]:
        if i > pi or j > pj:
            gaps.append((ls[pi:i], rs[pj:j]))
        if i < len(ls):
            matched.append((ls[i], rs[j]))
        pi, pj = i + 1, j + 1
    return matched, gaps


def _align_runs(ctx: _Ctx, left: list[Event], right: list[Event]) -> list[AlignedPair]:
    """Per stream: equal events first, then equal requests in the gaps; then moved
    requests across all gaps; then the same call within each remaining gap."""
    lstreams, rstreams = _streams(left), _streams(right)
    matched: list[tuple[Event, Event]] = []
    gaps: list[Gap] = []
    for name in list(lstreams) + [n for n in rstreams if n not in lstreams]:
        same, coarse = _split(lstreams.get(name, []), rstreams.get(name, []), ctx.event_key)
        matched += same
        for ls, rs in coarse:
            if not ls or not rs:
                gaps.append((ls, rs))
                continue
            pairs, rest = _split(ls, rs, ctx.request_key)
            matched += pairs
            gaps += rest
    # Moved: a leftover request equal to a leftover of the other run, anywhere.
    waiting: dict[bytes, deque[Event]] = {}
    for _, rs in gaps:
        for ev in rs:
            waiting.setdefault(ctx.request_key(ev), deque()).append(ev)
    moved: list[tuple[Event, Event]] = []
    taken: set[int] = set()
    for ls, _ in gaps:
        for ev in ls:
            q = waiting.get(ctx.request_key(ev))
            if q:
                other = q.popleft()
                moved.append((ev, other))
                taken.update((id(ev), id(other)))
    # Changed: within a gap, the same call (channel and target) in order.
    changed: list[tuple[Event, Event]] = []
    only_left: list[Event] = []
    only_right: list[Event] = []
    for ls, rs in gaps:
        pairs, rest = _split([e for e in ls if id(e) not in taken],
                             [e for e in rs if id(e) not in taken], ctx.call_key)
        changed += pairs
        for lrest, rrest in rest:
            only_left += lrest
            only_right += rrest
    rows: list[AlignedPair] = []
    rows += [_compare(ctx, l_, r_, None) for l_, r_ in matched]
    rows += [_compare(ctx, l_, r_, DiffStatus.MOVED) for l_, r_ in moved]
    rows += [_compare(ctx, l_, r_, DiffStatus.CHANGED) for l_, r_ in changed]
    rows += [_lone(ctx, e, None) for e in only_left]
    rows += [_lone(ctx, None, e) for e in only_right]
    return _in_run_order(rows, right)


def _in_run_order(rows: list[AlignedPair], right: list[Event]) -> list[AlignedPair]:
    """Left order; a right-only row goes after the row its predecessor (in the right run) is in."""
    partner = {id(p.right): p.left.seq for p in rows if p.left is not None and p.right is not None}
    anchor: dict[int, int] = {}
    last = -1
    for ev in right:
        if id(ev) in partner:
            last = partner[id(ev)]
        else:
            anchor[id(ev)] = last

    def key(p: AlignedPair) -> tuple[int, int, int]:
        if p.left is not None:
            return (p.left.seq, 0, 0)
        assert p.right is not None
        return (anchor.get(id(p.right), -1), 1, p.right.seq)
    return sorted(rows, key=key)


# -- comparing one pair -------------------------------------------------------------
def _lone(ctx: _Ctx, left: Event | None, right: Event | None) -> AlignedPair:
    ev = left if left is not None else right
    assert ev is not None
    call = ctx.call(ev)
    usage = call.usage if call is not None else None
    kind, _ = ctx.comparer.pair_kind(left, right, ())
    if left is not None:
        return AlignedPair(left, None, DiffStatus.ONLY_LEFT, left_usage=usage, kind=kind,
                           noise_counts=ctx.include_noise)
    return AlignedPair(None, right, DiffStatus.ONLY_RIGHT, right_usage=usage, kind=kind,
                       noise_counts=ctx.include_noise)


def _compare(ctx: _Ctx, left: Event, right: Event, status: DiffStatus | None) -> AlignedPair:
    lcall, rcall = ctx.call(left), ctx.call(right)
    lusage = lcall.usage if lcall is not None else None
    rusage = rcall.usage if rcall is not None else None
    if (status is None and ctx.answer_key(left) == ctx.answer_key(right)
            and _same_headers(left, right)):
        return AlignedPair(left, right, DiffStatus.SAME, left_usage=lusage, right_usage=rusage)
    changes = [c for c in structdiff(view(left, lcall), view(right, rcall), limit=MAX_CHANGES)
               if not any(c.path.startswith(p) for p in ctx.ignore)]
    if status is None:
        status = DiffStatus.CHANGED if changes else DiffStatus.SAME
    prompt = output = ""
    if lcall is not None and rcall is not None:
        prompt = text_diff(lcall.transcript(), rcall.transcript(),
                           f"left #{left.seq} prompt", f"right #{right.seq} prompt")
        output = text_diff(lcall.output + "\n", rcall.output + "\n",
                           f"left #{left.seq} answer", f"right #{right.seq} answer")
    kind, kinds = ctx.comparer.pair_kind(left, right, changes, status is DiffStatus.MOVED)
    if kind is Kind.SAME and status is DiffStatus.CHANGED:
        kind = Kind.NOISE  # differs only in what the comparison leaves out (volatile headers)
    return AlignedPair(left, right, status, tuple(changes), prompt, output, lusage, rusage,
                       kind, kinds, ctx.include_noise)


def _same_headers(left: Event, right: Event) -> bool:
    lh = headers_map(left.response.get("headers") if isinstance(left.response, dict) else None)
    rh = headers_map(right.response.get("headers") if isinstance(right.response, dict) else None)
    lq = headers_map(left.request.get("headers") if isinstance(left.request, dict) else None)
    rq = headers_map(right.request.get("headers") if isinstance(right.request, dict) else None)
    return lh == rh and lq == rq


