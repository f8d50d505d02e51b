"""Longest-common-subsequence alignment of two key sequences, near-linear when they agree.

:func:`lcs` returns the index pairs ``(i, j)`` with ``a[i] == b[j]`` of a longest
common subsequence, in increasing order. It strips the common prefix and suffix,
then runs Myers' O((N+M)·D) greedy algorithm, which is near-linear for a handful
of differences. When the differences are many it falls back to patience
anchoring (keys that occur once on each side, longest increasing run of them)
and recurses into the gaps, like ``git diff --patience``; regions with neither
few differences nor anchors are left unmatched rather than searched
quadratically.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Sequence

MAX_D = 256
"""Largest number of differences Myers' algorithm explores before patience takes over."""
_SMALL = 4_000_000
"""Gap size (len(a) * len(b)) under which an unbounded Myers search is acceptable."""
_MAX_DEPTH = 64

Pairs = list[tuple[int, int]]


def lcs(a: Sequence[Hashable], b: Sequence[Hashable]) -> Pairs:
    """Index pairs of a longest common subsequence of ``a`` and ``b`` (near-longest
    when the two differ in very many places), in increasing order."""
    return _lcs(a, b, 0, len(a), 0, len(b), 0)


def _lcs(a: Sequence[Hashable], b: Sequence[Hashable], alo: int, ahi: int, blo: int, bhi: int,
         depth: int) -> Pairs:
    head: Pairs = []
    while alo < ahi and blo < bhi and a[alo] == b[blo]:
        head.append((alo, blo))
        alo += 1
        blo += 1
    tail: Pairs = []
    while alo < ahi and blo < bhi and a[ahi - 1] == b[bhi - 1]:
        ahi -= 1
        bhi -= 1
        tail.append((ahi, bhi))
    tail.reverse()
    if alo == ahi or blo == bhi:
        return head + tail
    middle = _myers(a, b, alo, ahi, blo, bhi, MAX_D)
    if middle is None:
        middle = _patience(a, b, alo, ahi, blo, bhi, depth)
    return head + middle + tail


def _patience(a: Sequence[Hashable], b: Sequence[Hashable], alo: int, ahi: int, blo: int,
              bhi: int, depth: int) -> Pairs:
    anchors = _anchors(a, b, alo, ahi, blo, bhi) if depth < _MAX_DEPTH else []
    if not anchors:
        if (ahi - alo) * (bhi - blo) <= _SMALL:
            found = _myers(a, b, alo, ahi, blo, bhi, (ahi - alo) + (bhi - blo))
            return found or []
        return []
    out: Pairs = []
    pi, pj = alo, blo
    for i, j in anchors:
        out += _lcs(a, b, pi, i, pj, j, depth + 1)
        out.append((i, j))
        pi, pj = i + 1, j + 1
    out += _lcs(a, b, pi, ahi, pj, bhi, depth + 1)
    return out


def _anchors(a: Sequence[Hashable], b: Sequence[Hashable], alo: int, ahi: int, blo: int,
             bhi: int) -> Pairs:
    """Keys unique on both sides, as the longest run increasing on both sides."""
    count: dict[Hashable, int] = {}
    where_a: dict[Hashable, int] = {}
    for i in range(alo, ahi):
        k = a[i]
        count[k] = count.get(k, 0) + 1
        where_a[k] = i
    seen_b: dict[Hashable, int] = {}
    where_b: dict[Hashable, int] = {}
    for j in range(blo, bhi):
        k = b[j]
        if count.get(k) == 1:
            seen_b[k] = seen_b.get(k, 0) + 1
            where_b[k] = j
    cands = sorted((where_a[k], where_b[k]) for k, n in seen_b.items() if n == 1)
    # Longest increasing subsequence of j (patience sorting), i already increasing.
    tops: list[int] = []
    links: list[int] = []
    back: list[int] = [-1] * len(cands)
    for idx, (_i, j) in enumerate(cands):
        pos = bisect.bisect_left(tops, j)
        if pos == len(tops):
            tops.append(j)
            links.append(idx)
        else:
            tops[pos] = j
            links[pos] = idx
        back[idx] = links[pos - 1] if pos else -1
    out: Pairs = []
    idx = links[-1] if links else -1
    while idx >= 0:
        out.append(cands[idx])
        idx = back[idx]
    out.reverse()
    return out


def _myers(a: Sequence[Hashable], b: Sequence[Hashable], alo: int, ahi: int, blo: int,
           bhi: int, max_d: int) -> Pairs | None:
    """Myers' greedy LCS of ``a[alo:ahi]`` and ``b[blo:bhi]``; None past ``max_d`` edits."""
    n, m = ahi - alo, bhi - blo
    limit = min(max_d, n + m)
    v: dict[int, int] = {1: 0}
    trace: list[dict[int, int]] = []
    for d in range(limit + 1):
        trace.append(dict(v))
        for k in range(-d, d + 1, 2):
            x = v[k + 1] if k == -d or (k != d and v[k - 1] < v[k + 1]) else v[k - 1] + 1
            y = x - k
            while x < n and y < m and a[alo + x] == b[blo + y]:
                x += 1
                y += 1
            v[k] = x
            if x >= n and y >= m:
                return _backtrack(trace, n, m, alo, blo)
    return None


def _backtrack(trace: list[dict[int, int]], n: int, m: int, alo: int, blo: int) -> Pairs:
    out: Pairs = []
    x, y = n, m
    for d in range(len(trace) - 1, -1, -1):
        v = trace[d]
        k = x - y
        prev_k = k + 1 if k == -d or (k != d and v[k - 1] < v[k + 1]) else k - 1
        prev_x = v[prev_k]
        prev_y = prev_x - prev_k
        while x > prev_x and y > prev_y:
            x -= 1
            y -= 1
            out.append((alo + x, blo + y))
        x, y = prev_x, prev_y
    out.reverse()
    return out
