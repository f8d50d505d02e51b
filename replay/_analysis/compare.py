"""One comparison model: is a difference between two runs noise, an input or a behaviour change?

*Noise* is what any two live runs differ in: clock, random and uuid reads (and
every read a library made for its own bookkeeping, ``meta["lib"]``); the ids,
timestamps, fingerprints and usage accounting of the model APIs' wire formats
(OpenAI Chat Completions and Responses, Anthropic Messages, Gemini); HTTP
headers; a URL's port; and values that carry a run's own clock, random or uuid
reads (a tool result stamped with ``datetime.now()``, a prompt quoting it, an
id made from ``uuid4()``), found by replacing those values in both sides and
comparing what is left. Any uuid-shaped string is noise too.

An *input* change is the world answering differently (a tool result, a model
answer, an HTTP status or body, an exception raised). A *behaviour* change is
the agent asking for something else (another tool or URL, other arguments,
another prompt, calls added, removed or asked in another order).

The diff (:func:`replay._analysis.diff.diff`) stores a :class:`Kind` in every
:class:`~replay._analysis.rundiff.AlignedPair`; "first divergence" is the first
input or behaviour change. Divergence reports and the TUI use the same
:class:`Comparer` and :func:`classify`.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from replay._analysis.wire import api_of
from replay._capture.matcher import INFO_CHANNELS, VALUE_CHANNELS
from replay._cassette.divergence import LABELLERS, Divergence
from replay._cassette.events import Event, Value
from replay._cassette.structdiff import Change


class Pair(Protocol):
    """What :func:`classify` reads of a pair (a :class:`~replay._analysis.rundiff.AlignedPair`)."""

    @property
    def left(self) -> Event | None: ...
    @property
    def right(self) -> Event | None: ...
    @property
    def status(self) -> enum.Enum: ...
    @property
    def changes(self) -> tuple[Change, ...]: ...


class Kind(enum.Enum):
    """What a difference between two runs means (ordered: a pair takes its largest)."""

    SAME = "same"
    """No difference."""
    NOISE = "noise"
    """A value any two live runs differ in (ids, clock, random, headers)."""
    INPUT = "input"
    """The world answered differently: a tool result, a model answer, an HTTP response."""
    BEHAVIOUR = "behaviour"
    """The agent asked for something else, or more, or less, or in another order."""

    @property
    def rank(self) -> int:
        """0 same, 1 noise, 2 input, 3 behaviour."""
        return _RANK[self]


_RANK = {Kind.SAME: 0, Kind.NOISE: 1, Kind.INPUT: 2, Kind.BEHAVIOUR: 3}

NOISE_CHANNELS = VALUE_CHANNELS | INFO_CHANNELS
"""Channels whose answers differ between any two live runs (clock, random, uuid, sleep)."""

NOISE_KEYS = frozenset({
    # OpenAI Chat Completions / Responses
    "id", "created", "created_at", "completed_at", "system_fingerprint", "tool_call_id",
    "call_id", "item_id", "previous_response_id", "service_tier", "obfuscation",
    # Anthropic Messages
    "tool_use_id", "request_id",
    # Gemini
    "responseId", "createTime", "response_id",
    # token accounting (prompt-cache hits and misses vary between live runs)
    "usage", "usageMetadata", "cost_usd",
})
"""Keys of the model APIs' wire formats whose values differ between live runs: a change
at or under one of these keys of a model call's request or response is noise."""

MEANINGFUL_HEADERS = frozenset({"content-type", "content-encoding", "location", "retry-after",
                                "www-authenticate"})
"""Response headers whose change is an input change; any other header change is noise."""

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[1-8][0-9a-fA-F]{3}-?"
                     r"[89abAB][0-9a-fA-F]{3}-?[0-9a-fA-F]{12}")
"""A uuid (versions 1 to 8, with or without dashes)."""

_GEMINI = re.compile(r":(stream)?[gG]enerateContent$")
_KEY = re.compile(r"([A-Za-z_][\w-]*)|\['([^']*)'\]")
_PLACEHOLDER = "\x00noise\x00"


def is_model_api(ev: Event) -> bool:
    """Whether ``ev`` is a call to a model API (OpenAI, Anthropic or Gemini wire format)."""
    req = ev.request
    if not ev.channel.startswith("http") or not isinstance(req, dict):
        return False
    if api_of(req) is not None:
        return True
    url = req.get("url")
    return isinstance(url, str) and bool(_GEMINI.search(urlsplit(url).path))


def path_keys(path: str) -> list[str]:
    """The keys along a change path (``response.body.choices[0].id`` -> response, body,
    choices, id): list indexes left out."""
    return [m.group(1) or m.group(2) for m in _KEY.finditer(path)
            if m.group(1) or m.group(2)]


def _scalars(value: Value) -> Iterator[Value]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _scalars(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _scalars(v)
    else:
        yield value


class RunNoise:
    """The values one run read from the clock, random and uuid: where they reappear
    (in a tool result, a prompt, an id) they are noise too."""

    def __init__(self, events: Iterable[Event]) -> None:
        strings: set[str] = set()
        self.numbers: set[float] = set()
        """Non-integral floats and large integers the run read (epoch times, random())."""
        for ev in events:
            if ev.channel not in VALUE_CHANNELS:
                continue
            for x in _scalars(ev.response):
                if isinstance(x, bool):
                    continue
                if (isinstance(x, float) and not x.is_integer()) or (
                        isinstance(x, int | float) and abs(x) >= 10**6):
                    self.numbers.add(x)
                    strings.add(repr(x))
                    if isinstance(x, float) and abs(x) >= 10**6:
                        strings.add(str(int(x)))
                elif isinstance(x, str) and len(x) >= 8:
                    strings.add(x)
                    if UUID_RE.fullmatch(x):
                        strings.update((x.replace("-", ""), x[:8]))
                    if len(x) > 10 and x[10:11] == "T":
                        strings.add(x[:10] + " " + x[11:])
        self.strings = frozenset(strings)
        """Strings (8 characters or more) the run read, with their common renderings."""
        self._re: re.Pattern[str] | None = None

    def pattern(self) -> re.Pattern[str]:
        """One regex for every value (longest first) and any uuid."""
        if self._re is None:
            alts = [re.escape(s) for s in sorted(self.strings, key=len, reverse=True)]
            self._re = re.compile("|".join([*alts, UUID_RE.pattern]))
        return self._re

    def normalize(self, value: Any) -> Any:
        """``value`` with every noise value replaced by one placeholder."""
        if isinstance(value, str):
            return self.pattern().sub(_PLACEHOLDER, value)
        if isinstance(value, bytes):
            return self.normalize(value.decode("utf-8", "replace"))
        if isinstance(value, float | int) and not isinstance(value, bool):
            return _PLACEHOLDER if value in self.numbers else value
        if isinstance(value, dict):
            return {k: self.normalize(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.normalize(v) for v in value]
        return value


class Comparer:
    """Classifies the differences between a left and a right run."""

    def __init__(self, left: Iterable[Event] = (), right: Iterable[Event] = ()) -> None:
        self.left = RunNoise(left)
        """Noise values of the left run."""
        self.right = RunNoise(right)
        """Noise values of the right run."""

    def change_kind(self, change: Change, left: Event, right: Event) -> Kind:
        """The kind of one structural change between two paired events."""
        keys = path_keys(change.path)
        root = keys[0] if keys else ""
        asked = Kind.BEHAVIOUR if root == "request" else Kind.INPUT
        if left.channel in NOISE_CHANNELS and root == "response":
            return Kind.NOISE
        if len(keys) > 1 and keys[1] == "headers":
            if root == "request" or len(keys) < 3 or keys[2].lower() not in MEANINGFUL_HEADERS:
                return Kind.NOISE
            return asked
        if is_model_api(left) and any(k in NOISE_KEYS for k in keys[1:]):
            return Kind.NOISE
        if keys[1:] == ["url"] and _same_but_port(change.old, change.new):
            return Kind.NOISE
        if self.left.normalize(change.old) == self.right.normalize(change.new):
            return Kind.NOISE
        return asked

    def pair_kind(self, left: Event | None, right: Event | None, changes: Sequence[Change],
                  moved: bool = False) -> tuple[Kind, tuple[Kind, ...]]:
        """The kind of a pair (its largest change's) and of each of its ``changes``.

        A lone event (``left`` or ``right`` None) is a call added or removed:
        behaviour, unless it is noise (a clock, random, uuid or sleep read, or a
        library's own read). A moved event without changes is behaviour.
        """
        ev = left if left is not None else right
        if ev is None:
            return Kind.SAME, ()
        lib = any(e is not None and isinstance(e.meta, dict) and "lib" in e.meta
                  for e in (left, right))
        if left is None or right is None:
            return (Kind.NOISE if lib or ev.channel in NOISE_CHANNELS else Kind.BEHAVIOUR), ()
        kinds = tuple(Kind.NOISE if lib else self.change_kind(c, left, right) for c in changes)
        kind = max(kinds, key=_RANK.__getitem__, default=Kind.SAME)
        if moved and kind is Kind.SAME:
            kind = Kind.NOISE if lib or ev.channel in NOISE_CHANNELS else Kind.BEHAVIOUR
        elif not changes and not moved:
            kind = Kind.SAME
        return kind, kinds


def _same_but_port(old: Any, new: Any) -> bool:
    if not (isinstance(old, str) and isinstance(new, str)):
        return False
    a, b = urlsplit(old), urlsplit(new)
    return (a.scheme, a.hostname, a.path, a.query) == (b.scheme, b.hostname, b.path, b.query)


def classify(pair: Pair, comparer: Comparer | None = None) -> Kind:
    """The kind of an aligned pair: noise, input or behaviour (``SAME`` when equal).

    ``comparer`` holds both runs' noise values (see :class:`Comparer`); without
    one, only the two events' own values are known.
    """
    if comparer is None:
        comparer = Comparer([e for e in (pair.left,) if e is not None],
                            [e for e in (pair.right,) if e is not None])
    if pair.status.value == "same":
        return Kind.SAME
    return comparer.pair_kind(pair.left, pair.right, pair.changes,
                              moved=pair.status.value == "moved")[0]


_DIVERGENCE_COMPARER = Comparer()


def divergence_label(d: Divergence, change: Change) -> str:
    """``"noise"`` when a request change in a divergence report is a value any two
    live runs differ in (registered in :data:`replay._cassette.divergence.LABELLERS`)."""
    ev = d.expected
    if ev is None or ev.channel != d.channel:
        return ""
    path = "request" + (change.path if change.path.startswith("[") or not change.path
                        else "." + change.path)
    actual = dataclasses.replace(ev, request=d.actual_request)
    kind = _DIVERGENCE_COMPARER.change_kind(Change(path, change.kind, change.old, change.new),
                                            ev, actual)
    return "noise" if kind is Kind.NOISE else ""


if divergence_label not in LABELLERS:
    LABELLERS.append(divergence_label)
