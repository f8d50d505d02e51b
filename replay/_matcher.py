"""Matching requests under replay to recorded events, per logical task.

Each logical task has its own queue of recorded events in the order it asked
for them; a request is answered by the head of its task's queue when channel
and request match. Tasks may interleave differently from the recording
without any divergence, because no task ever looks at another's queue. A
request that does not match is graded (see :class:`Grade`) and reported with
its closest recorded candidates.

Nested events (made inside a tool the replay does not run) and informational
channels (sleeps) are kept for display but never expected.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from replay._divergence import Divergence, Grade
from replay._events import CallSite, Event, Value
from replay._structdiff import diff, distance

RequestMatcher = Callable[[Value, Value], bool]
"""``(recorded_request, actual_request) -> bool``."""

INFO_CHANNELS = frozenset({"sleep"})
"""Channels recorded for display only; replay never expects them."""

_KEY_FIELDS = ("fn", "method", "url", "name")


def is_matchable(event: Event) -> bool:
    """Whether replay expects this event to be asked for."""
    return event.parent is None and event.channel not in INFO_CHANNELS


def call_key(channel: str, request: Value) -> tuple[Any, ...]:
    """What identifies "the same call" regardless of its arguments."""
    if isinstance(request, dict):
        return (channel, *(str(request.get(k)) for k in _KEY_FIELDS if k in request))
    return (channel,)


class Matcher:
    """The replay side of a session: per-task queues of recorded events."""

    def __init__(self, events: Iterable[Event],
                 matchers: dict[str, RequestMatcher] | None = None) -> None:
        self._queues: dict[str, deque[Event]] = {}
        for ev in sorted((e for e in events if is_matchable(e)), key=lambda e: e.seq):
            self._queues.setdefault(ev.task, deque()).append(ev)
        self._matchers = dict(matchers or {})
        self._lock = threading.Lock()
        self.consumed = 0

    def set_matcher(self, channel_prefix: str, fn: RequestMatcher) -> None:
        """Compare requests on channels starting with ``channel_prefix`` with ``fn``."""
        self._matchers[channel_prefix] = fn

    def _same(self, recorded: Event, channel: str, request: Value) -> bool:
        if recorded.channel != channel:
            return False
        for prefix, fn in self._matchers.items():
            if channel.startswith(prefix):
                return fn(recorded.request, request)
        return bool(recorded.request == request)

    def match(self, task: str, channel: str, request: Value,
              site: CallSite | None) -> Event | Divergence:
        """The recorded event answering this request, or the divergence."""
        with self._lock:
            q = self._queues.get(task)
            if q and self._same(q[0], channel, request):
                self.consumed += 1
                return q.popleft()
            return self._diverge(q, task, channel, request, site)

    def _diverge(self, q: deque[Event] | None, task: str, channel: str, request: Value,
                 site: CallSite | None) -> Divergence:
        expected = q[0] if q else None
        candidates = self._candidates(channel, request)
        if q:
            later = next((i for i, ev in enumerate(q) if i and self._same(ev, channel, request)),
                         None)
            if later is not None:
                grade = Grade.SWAPPED if later == 1 and self._swap_plausible(q) else Grade.MISSING
                return Divergence(grade, channel, task, expected, request, site,
                                  tuple(diff(expected.request if expected else None, request)),
                                  candidates)
            key = call_key(channel, request)
            same_call = next((ev for ev in q if call_key(ev.channel, ev.request) == key), None)
            if same_call is not None:
                return Divergence(Grade.CHANGED, channel, task, same_call, request, site,
                                  tuple(diff(same_call.request, request)), candidates)
        return Divergence(Grade.EXTRA, channel, task, expected, request, site,
                          tuple(diff(expected.request, request)) if expected else (),
                          candidates)

    def _swap_plausible(self, q: deque[Event]) -> bool:
        # The skipped head is asked for right after: a swap rather than a drop is
        # only decidable later; report SWAPPED when the two differ in call key.
        return len(q) >= 2 and call_key(q[0].channel, q[0].request) != call_key(
            q[1].channel, q[1].request)

    def _candidates(self, channel: str, request: Value, n: int = 3) -> tuple[Event, ...]:
        pool: list[Event] = []
        for q in self._queues.values():
            pool.extend(ev for ev in q if ev.channel == channel)
            if len(pool) > 5000:
                break
        pool.sort(key=lambda ev: (distance(ev.request, request), ev.seq))
        return tuple(pool[:n])

    def unconsumed(self) -> tuple[Event, ...]:
        """Recorded events never asked for, in order."""
        with self._lock:
            rest = [ev for q in self._queues.values() for ev in q]
        return tuple(sorted(rest, key=lambda e: e.seq))
