"""Divergence reports: what the replayed run asked that the recording cannot answer."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from replay._events import CallSite, Event, Value
from replay._structdiff import Change


class Grade(enum.Enum):
    """How a request under replay differs from the recording."""

    CHANGED = "changed"
    """The same call (same channel and target) with a different request."""
    EXTRA = "extra"
    """A call the recording does not have at this point of the task."""
    MISSING = "missing"
    """Recorded calls were skipped: the request matches a later recorded event."""
    SWAPPED = "swapped"
    """Two recorded calls of one task were made in the other order."""
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

    @property
    def seq(self) -> int | None:
        """The event number of the recorded event at which the run diverged."""
        return self.expected.seq if self.expected is not None else None

    def report(self) -> str:
        """A report a person can act on: where, what, how it differs, what was near."""
        lines: list[str] = []
        where = f"event #{self.seq}" if self.seq is not None else "after the last event"
        head = {
            Grade.CHANGED: "request changed",
            Grade.EXTRA: "extra call not in the recording",
            Grade.MISSING: "recorded call(s) skipped",
            Grade.SWAPPED: "calls made in another order",
            Grade.UNUSED: "recorded events never asked for",
            Grade.REORDERED: "reordered (accepted)",
        }[self.grade]
        lines.append(f"replay diverged at {where} on channel {self.channel!r} "
                     f"(task {self.task}): {head}")
        if self.grade is Grade.UNUSED:
            for ev in self.unused[:10]:
                lines.append(f"  unused #{ev.seq} {ev.channel} {_brief(ev.request)}"
                             + (f"  at {ev.site}" if ev.site else ""))
            if len(self.unused) > 10:
                lines.append(f"  ... and {len(self.unused) - 10} more")
            return "\n".join(lines)
        if self.expected is not None:
            lines.append(f"  expected #{self.expected.seq} {self.expected.channel}: "
                         f"{_brief(self.expected.request)}")
            if self.expected.site is not None:
                lines.append(f"    recorded at {self.expected.site}")
        else:
            lines.append("  expected: nothing more from this task")
        lines.append(f"  actual   {self.channel}: {_brief(self.actual_request)}")
        if self.actual_site is not None:
            lines.append(f"    asked at {self.actual_site}")
        if self.changes:
            lines.append("  differences (expected -> actual):")
            for ch in self.changes[:20]:
                lines.append(f"    {ch}")
            if len(self.changes) > 20:
                lines.append(f"    ... and {len(self.changes) - 20} more")
        if self.candidates:
            lines.append("  closest recorded candidates:")
            for ev in self.candidates:
                lines.append(f"    #{ev.seq} {ev.channel} task {ev.task}: {_brief(ev.request)}")
        return "\n".join(lines)


def _brief(value: Value, width: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
