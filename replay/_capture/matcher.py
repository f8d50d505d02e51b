"""Matching requests under replay to recorded events, per logical task.

Each logical task has its own queue of recorded events in the order it asked
for them; a request is answered by the head of its task's queue when channel
and request match. Tasks may interleave differently from the recording
without any divergence, because no task ever looks at another's queue (the
matcher counts such servings in ``reordered``: accepted, never raised).

A request that does not match is graded (see :class:`Grade` and
docs/concurrency.md), at the first divergent event:

* the head of the queue is the same call (channel and target) with another
  request: ``CHANGED``;
* the request is a *later* event of the task's queue, and identifies it (no
  other event of the task's recording has that request: a uuid or clock read,
  asked many times without arguments, identifies nothing): that event is
  served and the verdict waits for the task's next request (one request, no
  more): if it asks for one of the skipped events, ``SWAPPED``; otherwise
  (anything else, even the same call with other arguments), or if the task
  ends, ``MISSING``. Strict replay cannot defer any other verdict, because it has
  nothing to answer with;
* anything else: ``EXTRA``.

Value channels (clock, random, uuid) ask without arguments, so their requests
cannot tell reads apart; their call site can. In strict matching (not under
``OnMiss.LIVE``, and not on a channel with a custom :data:`RequestMatcher`),
a value read that matches the head's request but is asked at another call
site (compared by :func:`site_key`: function and line, not the file's path) is
not answered by the head: if a later event of the task's queue was recorded at
the asking site, the events before it are skipped (the verdict waits, as
above, and coming back means the same request *at the skipped event's site*);
otherwise the read is ``EXTRA`` at the head. Either way the divergence has
``other_site`` set and names both sites.

What a request the recording cannot answer does is the matcher's
:class:`OnMiss` policy: diverge (strict replay), go live once the task's
recorded events are used up (fork), or go live whenever no recorded event of
the task matches (new-events; the queue is searched past its head).

Reads that libraries made for themselves (events with ``meta["lib"]``, see
:meth:`replay._capture.session.Session.begin`) are not queued: they are kept in
pools by task, channel, library line and request, served in their recorded
order from those pools, and never expected (an unused one is no divergence).

Nested events (made inside a tool the replay does not run) and informational
channels (sleeps) are never expected. A session that writes a new cassette
while replaying copies them along with the event they belong to
(:meth:`Matcher.bundle`).
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from replay._capture import callsite as _callsite
from replay._cassette.divergence import Divergence, Grade
from replay._cassette.events import CallSite, Event, Value
from replay._cassette.structdiff import diff, distance

RequestMatcher = Callable[[Value, Value], bool]
"""``(recorded_request, actual_request) -> bool``."""

INFO_CHANNELS = frozenset({"sleep"})
"""Channels recorded for display only; replay never expects them."""

VALUE_CHANNELS = frozenset({"clock", "random", "uuid"})
"""Channels whose requests carry no arguments: reads are told apart by call site."""

_KEY_FIELDS = ("fn", "method", "url", "name")


def _plain_reads(prefixes: tuple[str, ...]) -> frozenset[str]:
    """The value channels no custom matcher's prefix covers: :meth:`Matcher.take_value`
    answers them after one set look instead of a ``startswith`` call."""
    return frozenset(c for c in VALUE_CHANNELS if not c.startswith(prefixes))


class OnMiss(enum.Enum):
    """What a request that no recorded event answers does."""

    DIVERGE = "diverge"
    """Strict replay: a :class:`Divergence` (the session raises it)."""
    LIVE_WHEN_DONE = "live-when-done"
    """Fork: a task whose recorded events are used up runs live; a mismatch
    before that diverges."""
    LIVE = "live"
    """New events: any matching recorded event of the task answers (not only the
    head of its queue); without one, the call runs live."""


def is_matchable(event: Event) -> bool:
    """Whether replay expects this event to be asked for."""
    return event.parent is None and event.channel not in INFO_CHANNELS


def call_key(channel: str, request: Value) -> tuple[Any, ...]:
    """What identifies "the same call" regardless of its arguments.

    The channel, and the request's function, method, name and URL path (a URL's
    host and port are arguments: the same API at another address is the same call).
    """
    if isinstance(request, dict):
        return (channel, *(urlsplit(str(request[k])).path if k == "url" else str(request[k])
                           for k in _KEY_FIELDS if k in request))
    return (channel,)


def site_key(site: CallSite | None) -> tuple[str, int] | None:
    """What identifies a call site in every checkout and copy: function and line.

    Sites are recorded with absolute paths; a cassette replayed from another
    checkout, machine or OS, or by a copy of the program under another name
    (``my_agent.py`` recorded, ``agent.py`` replayed), must still match, so the
    file is left out. Two reads in one function differ by line.
    """
    if site is None:
        return None
    return site.function, site.line


def _lenient_key(task: str, channel: str, request: Value, library: str
                 ) -> tuple[str, str, str, bytes]:
    if library == "background":  # replay._capture.session.BACKGROUND
        return task, channel, library, repr(call_key(channel, request)).encode()
    return task, channel, library, repr(request).encode()


@dataclass(frozen=True, slots=True)
class _Skip:
    """A request answered by a later recorded event; the grade awaits the next one."""

    skipped: tuple[Event, ...]
    served: Event
    channel: str
    request: Value
    site: CallSite | None


class Matcher:
    """The replay side of a session: per-task queues of recorded events."""

    def __init__(self, events: Iterable[Event],
                 matchers: dict[str, RequestMatcher] | None = None, *,
                 on_miss: OnMiss = OnMiss.DIVERGE, legacy_reads: bool = False) -> None:
        self.on_miss = on_miss
        self.legacy_reads = legacy_reads
        """The recording predates library reads being told apart: a library's read may
        be answered by the head of its task's queue."""
        self._queues: dict[str, deque[Event]] = {}
        self._lenient: dict[tuple[str, str, str, bytes], deque[Event]] = {}
        self._all: tuple[Event, ...] = tuple(sorted(events, key=lambda e: e.seq))
        self._extra: dict[int, list[Event]] = {}
        self._index(self._all)
        self._matchers = dict(matchers or {})
        self._prefixes = tuple(self._matchers)
        self._plain_reads = _plain_reads(self._prefixes)
        self._lock = threading.Lock()
        self._skips: dict[str, _Skip] = {}
        self._copied: set[int] = set()
        self._max_served = -1
        self.consumed = 0
        """Recorded events served."""
        self.reordered = 0
        """Events served after an event recorded later than them (another task's):
        the run interleaved its tasks differently. Accepted."""

    def _index(self, ordered: tuple[Event, ...]) -> None:
        """Queue the matchable events; attach the rest to the event they go with."""
        riders: dict[str, list[Event]] = {}
        root: dict[int, int] = {}
        for ev in ordered:
            if ev.parent is not None:  # nested: goes with its top-level ancestor
                top = root.get(ev.parent, ev.parent)
                root[ev.seq] = top
                self._extra.setdefault(top, []).append(ev)
            elif ev.channel in INFO_CHANNELS:  # a sleep: goes with the task's next call
                riders.setdefault(ev.task, []).append(ev)
            elif ev.meta and isinstance(ev.meta.get("lib"), str):
                key = _lenient_key(ev.task, ev.channel, ev.request, str(ev.meta["lib"]))
                self._lenient.setdefault(key, deque()).append(ev)
            else:
                self._queues.setdefault(ev.task, deque()).append(ev)
                lead = riders.pop(ev.task, None)
                if lead:
                    self._extra.setdefault(ev.seq, []).extend(lead)
        # Sleeps after a task's last call go with nothing: the task is live by then
        # and sleeps (and records) them again.

    def set_matcher(self, channel_prefix: str, fn: RequestMatcher) -> None:
        """Compare requests on channels starting with ``channel_prefix`` with ``fn``."""
        self._matchers[channel_prefix] = fn
        self._prefixes = tuple(self._matchers)
        self._plain_reads = _plain_reads(self._prefixes)

    def _same(self, recorded: Event, channel: str, request: Value) -> bool:
        if recorded.channel != channel:
            return False
        if channel.startswith(self._prefixes):
            for prefix, fn in self._matchers.items():
                if channel.startswith(prefix):
                    return fn(recorded.request, request)
        return bool(recorded.request == request)

    def _find(self, q: deque[Event] | None, channel: str, request: Value) -> int | None:
        if not q:
            return None
        return next((i for i, ev in enumerate(q) if i and self._same(ev, channel, request)),
                    None)

    def match(self, task: str, channel: str, request: Value,
              site: CallSite | None) -> Event | Divergence | None:
        """The recorded event answering this request, the divergence, or None: run live.

        None is only returned under a live :class:`OnMiss` policy.
        """
        with self._lock:
            q = self._queues.get(task)
            skip = self._skips.pop(task, None)
            if skip is not None:
                return self._settle(skip, task, channel, request, site)
            if q and self._same(q[0], channel, request):
                if self.on_miss is OnMiss.LIVE or not self._elsewhere(q[0], channel, site):
                    return self._serve(q, 0)
                return self._misplaced(q, task, channel, request, site)
            later = self._find(q, channel, request)
            if self.on_miss is OnMiss.LIVE:
                return self._serve(q, later) if q is not None and later is not None else None
            if not q and self.on_miss is OnMiss.LIVE_WHEN_DONE:
                return None
            if q is not None and later is not None and self._identifies(q[later]):
                self._skips[task] = _Skip(tuple(q[i] for i in range(later)), q[later],
                                          channel, request, site)
                return self._serve(q, later)
            return self._diverge(q, task, channel, request, site)

    def take_value(self, task: str, channel: str, request: Value,
                   site: CallSite) -> Event | None:
        """The head of ``task``'s queue when it is this value read at ``site``: what
        :meth:`match` serves in that case, found in a few comparisons. None when it
        is not (or a verdict is waiting): ask :meth:`match`, nothing has changed."""
        if channel not in self._plain_reads and channel.startswith(self._prefixes):
            return None
        lock = self._lock  # acquire() and release(): a with block binds two methods
        lock.acquire()
        try:
            q = self._queues.get(task)
            if not q or task in self._skips:
                return None
            head = q[0]
            there = head.site
            if (there is None or head.channel != channel or there.line != site.line
                    or there.function != site.function or head.request != request):
                return None
            q.popleft()  # _serve(q, 0) inlined: a call is ~5% of a replayed read
            self.consumed += 1
            if head.seq < self._max_served:
                self.reordered += 1
            else:
                self._max_served = head.seq
            return head
        finally:
            lock.release()

    def lenient(self, task: str, channel: str, request: Value, library: str) -> Event | None:
        """The next recorded read a library made at the same line, task and request, or
        None (the read runs live). A cassette written before library reads were told
        apart has them in the task's queue: its head answers when it is the same read."""
        with self._lock:
            pool = self._lenient.get(_lenient_key(task, channel, request, library))
            if pool:
                self.consumed += 1
                return pool.popleft()
            q = self._queues.get(task) if self.legacy_reads else None
            if q and task not in self._skips and q[0].channel == channel and (
                    q[0].request == request):
                return self._serve(q, 0)
            return None

    def _elsewhere(self, recorded: Event, channel: str, site: CallSite | None) -> bool:
        """Whether a value read asked at ``site`` is not ``recorded``'s read: both sites
        are known and differ, and no custom matcher decides what matches. A site in
        generated code (a dataclass's ``<string>`` ``__init__``), which recordings made
        before such frames were looked past carry, tells nothing."""
        there = recorded.site
        if (channel not in VALUE_CHANNELS or recorded.channel != channel or site is None
                or there is None or channel.startswith(self._prefixes)
                or _callsite.generated(there.file)):
            return False
        return there.line != site.line or there.function != site.function  # site_key

    def _misplaced(self, q: deque[Event], task: str, channel: str, request: Value,
                   site: CallSite | None) -> Event | Divergence:
        """A value read whose request the head has, asked at another site than the head's.

        A later read of the queue recorded at the asking site identifies the read:
        the events before it were skipped (the verdict waits for the next request).
        Without one, the read is extra here.
        """
        later = next((i for i, ev in enumerate(q) if i and self._same(ev, channel, request)
                      and not self._elsewhere(ev, channel, site)), None)
        if later is not None:
            self._skips[task] = _Skip(tuple(q[i] for i in range(later)), q[later],
                                      channel, request, site)
            return self._serve(q, later)
        return Divergence(Grade.EXTRA, channel, task, q[0], request, site, (),
                          self._candidates(channel, request), other_site=True)

    def _identifies(self, event: Event) -> bool:
        """Whether no other recorded event of ``event``'s task has the same request."""
        return not any(ev is not event and ev.task == event.task and is_matchable(ev)
                       and self._same(ev, event.channel, event.request) for ev in self._all)

    def _serve(self, q: deque[Event], i: int) -> Event:
        ev = q[i]
        del q[i]
        self.consumed += 1
        if ev.seq < self._max_served:
            self.reordered += 1
        else:
            self._max_served = ev.seq
        return ev

    def _settle(self, skip: _Skip, task: str, channel: str, request: Value,
                site: CallSite | None) -> Divergence:
        """The task's next request after a skip: did it come back for a skipped event?"""
        back = any(self._same(ev, channel, request) and not self._elsewhere(ev, channel, site)
                   for ev in skip.skipped)
        grade = Grade.SWAPPED if back else Grade.MISSING
        return Divergence(grade, skip.channel, task, skip.skipped[0], skip.request, skip.site,
                          skipped=skip.skipped, instead=skip.served, next_channel=channel,
                          next_request=request, next_site=site,
                          other_site=self._elsewhere(skip.skipped[0], skip.channel, skip.site))

    def settle(self) -> list[Divergence]:
        """Verdicts still waiting at the end of the run: the tasks asked nothing more."""
        with self._lock:
            skips = list(self._skips.items())
            self._skips.clear()
        return [Divergence(Grade.MISSING, s.channel, task, s.skipped[0], s.request, s.site,
                           skipped=s.skipped, instead=s.served,
                           other_site=self._elsewhere(s.skipped[0], s.channel, s.site))
                for task, s in skips]

    def _diverge(self, q: deque[Event] | None, task: str, channel: str, request: Value,
                 site: CallSite | None) -> Divergence:
        head = q[0] if q else None
        candidates = self._candidates(channel, request)
        if head is not None and call_key(head.channel, head.request) == call_key(
                channel, request):
            return Divergence(Grade.CHANGED, channel, task, head, request, site,
                              tuple(diff(head.request, request)), candidates)
        return Divergence(Grade.EXTRA, channel, task, head, request, site, (), candidates)

    def _candidates(self, channel: str, request: Value, n: int = 3) -> tuple[Event, ...]:
        pool: list[Event] = []
        for q in self._queues.values():
            pool.extend(ev for ev in q if ev.channel == channel)
            if len(pool) > 5000:
                break
        pool.sort(key=lambda ev: (distance(ev.request, request), ev.seq))
        return tuple(pool[:n])

    def bundle(self, event: Event) -> tuple[Event, ...]:
        """``event`` with what goes along with it when copied, in ``seq`` order.

        Its nested events and the sleeps its task made just before it. Each
        event is handed out once.
        """
        with self._lock:
            out = [ev for ev in (event, *self._extra.get(event.seq, ()))
                   if ev.seq not in self._copied]
            self._copied.update(ev.seq for ev in out)
        return tuple(sorted(out, key=lambda e: e.seq))

    def has_queued(self, task: str) -> bool:
        """Whether ``task`` still has recorded events to be asked for."""
        return bool(self._queues.get(task))

    def unconsumed(self) -> tuple[Event, ...]:
        """Recorded events never asked for, in order."""
        with self._lock:
            rest = [ev for q in self._queues.values() for ev in q]
        return tuple(sorted(rest, key=lambda e: e.seq))
