"""Divergence reports: what the replayed run asked that the recording cannot answer.

How a mismatch is graded (see docs/concurrency.md) is decided by the matcher;
this module holds the verdict as data and renders it for people.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from replay._cassette.difftext import change_lines, clip, shown_pair
from replay._cassette.events import CallSite, Event, Value
from replay._cassette.jsonable import short_repr
from replay._cassette.redact import DEFAULT as _SHOWN
from replay._cassette.structdiff import Change, diff

LABELLERS: list[Callable[[Divergence, Change], str]] = []
"""Functions naming what a request change is (``"noise"`` for a value any two live
runs differ in, ``""`` when they cannot tell); the analysis layer registers one
(:mod:`replay._analysis.compare`). A report shows the first non-empty label."""


class Grade(enum.Enum):
    """How a request under replay differs from the recording."""

    CHANGED = "changed"
    """The same call (same channel and target) with a different request."""
    EXTRA = "extra"
    """A call the recording does not have at this point of the task."""
    MISSING = "missing"
    """Recorded calls were skipped: the request matched a later recorded event of
    the task, and the task's next request was not one of the skipped calls."""
    SWAPPED = "swapped"
    """Recorded calls of one task were made in another order: the request matched
    a later recorded event, and the task's next request asked for a skipped one."""
    UNUSED = "unused"
    """The run ended with recorded events never asked for."""
    REORDERED = "reordered"
    """Same events in another interleaving of tasks: accepted, never raised."""


@dataclass(frozen=True, slots=True)
class Divergence:
    """One point where the run under replay left the recording."""

    grade: Grade
    """The kind of divergence."""
    channel: str
    """Channel of the request that diverged (or of the unused event)."""
    task: str
    """Logical task that made the request."""
    expected: Event | None
    """The recorded event the task was due to ask for next (None: none left)."""
    actual_request: Value = None
    """What the run asked for instead."""
    actual_site: CallSite | None = None
    """Where the run asked for it."""
    changes: tuple[Change, ...] = ()
    """Structural differences, expected request -> actual request."""
    candidates: tuple[Event, ...] = ()
    """The closest recorded events for the actual request, best first."""
    unused: tuple[Event, ...] = field(default=())
    """For ``UNUSED``: the events never asked for."""
    skipped: tuple[Event, ...] = ()
    """For ``MISSING`` / ``SWAPPED``: the recorded events of the task passed over."""
    instead: Event | None = None
    """For ``MISSING`` / ``SWAPPED``: the later recorded event the run asked for
    in their place (it was served)."""
    next_channel: str | None = None
    """For ``MISSING`` / ``SWAPPED``: the channel of the task's following request,
    which settled the grade (None when the task asked nothing more)."""
    next_request: Value = None
    """That following request."""
    next_site: CallSite | None = None
    """Where the following request was asked."""
    other_site: bool = False
    """A value read (clock, random, uuid: requests without arguments) asked at
    another call site than the recorded read it was compared with: the sites, not
    the requests, decided the grade. ``expected.site`` and ``actual_site`` name both."""

    @property
    def seq(self) -> int | None:
        """The event number of the recorded event at which the run diverged."""
        return self.expected.seq if self.expected is not None else None

    def report(self) -> str:
        """A report a person can act on: where, what, how it differs, what was near.

        Values are shown redacted, long ones clipped around where they first
        differ from the other side; each candidate once, with what separates it
        from the request.
        """
        lines: list[str] = []
        where = (f"at event #{self.seq}" if self.seq is not None
                 else "after the task's last recorded event")
        head = {
            Grade.CHANGED: "request changed",
            Grade.EXTRA: "extra call not in the recording",
            Grade.MISSING: "recorded call(s) skipped",
            Grade.SWAPPED: "calls made in another order",
            Grade.UNUSED: "recorded events never asked for",
            Grade.REORDERED: "reordered (accepted)",
        }[self.grade]
        if self.other_site:
            head += ", asked at another call site"
        lines.append(f"replay diverged {where} on channel {self.channel!r} "
                     f"(task {self.task}): {head}")
        if self.grade is Grade.UNUSED:
            for ev in self.unused[:10]:
                lines.append(f"  unused #{ev.seq} {ev.channel} {_brief(ev.request)}"
                             + (f"  at {ev.site}" if ev.site else ""))
            if len(self.unused) > 10:
                lines.append(f"  ... and {len(self.unused) - 10} more")
            return "\n".join(lines)
        instead = f" (recorded as #{self.instead.seq})" if self.instead is not None else ""
        if self.expected is not None:
            want, got = _brief_pair(self.expected.request, self.actual_request)
            lines.append(f"  expected #{self.expected.seq} {self.expected.channel}: {want}")
            if self.expected.site is not None:
                lines.append(f"    recorded at {self.expected.site}")
        else:
            got = _brief(self.actual_request)
            lines.append("  expected: nothing more from this task")
        lines.append(f"  actual   {self.channel}{instead}: {got}")
        if self.actual_site is not None:
            lines.append(f"    asked at {self.actual_site}")
        if self.grade in (Grade.MISSING, Grade.SWAPPED):
            lines.extend(self._order_lines())
        labels = [self._label(ch) for ch in self.changes]
        if self.changes:
            lines.append("  differences (expected -> actual):")
            for ch, label in list(zip(self.changes, labels, strict=True))[:20]:
                lines.extend(f"    {line}" for line in change_lines(_SHOWN.change(ch),
                                                                      label=label))
            if len(self.changes) > 20:
                lines.append(f"    ... and {len(self.changes) - 20} more")
        candidates = self._candidate_lines()
        if candidates:
            lines.append("  closest recorded candidates:")
            lines.extend(f"    {line}" for line in candidates)
        lines.append(f"  hint: {self._hint(bool(candidates))}")
        if self.changes and all(label == "noise" for label in labels):
            lines.append(f"  note: {_NOISE_NOTE}")
        if self.other_site:
            lines.append(f"  note: {_SITE_NOTE}")
        return "\n".join(lines)

    def _label(self, change: Change) -> str:
        for labeller in LABELLERS:
            try:
                label = labeller(self, change)
            except Exception:  # a report is never lost to its enrichment
                label = ""
            if label:
                return label
        return ""

    def _candidate_lines(self) -> list[str]:
        """The candidates other than the expected event, each shown once, with what
        separates it from the actual request (candidates alike are merged)."""
        out: dict[str, list[int]] = {}
        for ev in self.candidates:
            if self.expected is not None and ev.seq == self.expected.seq:
                continue  # already shown as "expected"
            paths = [c.path or "(value)" for c in diff(ev.request, self.actual_request,
                                                        limit=50)]
            if ev.channel != self.channel:
                what = f"{ev.channel}: {_brief(ev.request)}"
            elif not paths:
                what = "the same request"
            else:
                more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
                what = "differs in " + ", ".join(paths[:3]) + more
            text = f"{ev.channel} task {ev.task}: {what}" + (
                f"  at {ev.site}" if self.other_site and ev.site else "")
            out.setdefault(text, []).append(ev.seq)
        return [", ".join(f"#{seq}" for seq in seqs) + f" {text}" for text, seqs in out.items()]

    def _hint(self, candidates: bool) -> str:
        if self.grade is Grade.EXTRA:
            return _EXTRA_HINT + (_EXTRA_CANDIDATES if candidates else "")
        return _HINTS[self.grade]

    def _order_lines(self) -> list[str]:
        out = ["  skipped: " + ", ".join(f"#{ev.seq} {ev.channel}" for ev in self.skipped[:10])
               + (f" and {len(self.skipped) - 10} more" if len(self.skipped) > 10 else "")]
        if self.next_channel is None:
            out.append("  then     the task asked nothing more")
            return out
        out.append(f"  then     {self.next_channel}: {_brief(self.next_request)}")
        if self.next_site is not None:
            out.append(f"    asked at {self.next_site}")
        return out


_HINTS = {
    Grade.CHANGED: "the run asks the same call differently: the code changed, an earlier "
                   "answer was edited, or the code read an input agent-replay does not "
                   "capture (a private generator seeded by itself, a C extension's clock; "
                   "see docs/recording.md#limits)",
    Grade.EXTRA: "",
    Grade.MISSING: "the code no longer makes the skipped call(s)",
    Grade.SWAPPED: "the code makes the same calls in another order within one task "
                   "(tasks interleaving differently never diverge)",
    Grade.UNUSED: "",
    Grade.REORDERED: "",
}


_EXTRA_HINT = "the code makes a call the recorded run did not make here"
_EXTRA_CANDIDATES = ("; if the expected call was dropped and a later one changed, the "
                     "candidates above show how close the recorded calls come")
_NOISE_NOTE = ("every difference is a value that changes between any two live runs (an id, "
               "a time): the code read a clock, random or uuid source agent-replay does not "
               "capture (see docs/recording.md#limits)")

_SITE_NOTE = ("clock, random and uuid reads carry no arguments, so the call site tells "
              "them apart (function and line; not the file's path or name): a "
              "line that moved because the code was edited is a new site, re-record")


def _brief(value: Value, width: int = 160) -> str:
    # reports show redacted values, whatever was recorded
    return clip(short_repr(_SHOWN.value(value), width + 1), width)


def _brief_pair(expected: Value, actual: Value, width: int = 160) -> tuple[str, str]:
    """Both requests, clipped around the first character where they differ."""
    return shown_pair(_SHOWN.value(expected), _SHOWN.value(actual), width)
