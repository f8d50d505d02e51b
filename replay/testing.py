"""Helpers for tests of agents: assert on how a recorded run behaved.

A :class:`RunView` reads an event log (a cassette, or the run a test is making)
and answers the questions a test asks: which channels were used, which model
calls were made and what they cost in tokens, which tools ran with which
arguments and results.

    from replay.testing import RunView, assert_tool_called

    view = RunView.load("tests/cassettes/test_agent/test_books.replay")
    view.channels                        # {'http': 2, 'tool:get_weather': 1, 'clock': 3}
    view.on("tool:*")                    # events of matching channels
    view.model_calls[0].usage            # Usage(input_tokens=..., output_tokens=...)
    view.usage.total_tokens              # summed over every model call
    assert_tool_called(view, "get_weather", city="Paris")

Under pytest, the ``replay_run`` fixture is a :class:`LiveRun`: the same view
over the events of the test's own run, filled in as the test runs.
"""

from __future__ import annotations

import fnmatch
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from replay._analysis.summary import summarize
from replay._analysis.usage import ZERO, Usage
from replay._capture.session import RecordMode
from replay._cassette import read_cassette
from replay._cassette.events import Event, RecordedError, Value
from replay._pytest.llm import ModelCall, RequestedToolCall, model_call
from replay._runs.api import ReplayResult

__all__ = [
    "DriftWarning",
    "LiveRun",
    "ModelCall",
    "RequestedToolCall",
    "RunView",
    "ToolCall",
    "Usage",
    "assert_tool_called",
    "assert_tool_not_called",
]

_TOOL_PREFIXES = ("tool:", "capture:")


class DriftWarning(UserWarning):
    """A replayed test's recording no longer matches the live context (``--replay-drift``)."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call of a ``@replay.tool`` (or ``replay.capture``) function."""

    seq: int
    """Event number."""
    name: str
    """The tool's name (the channel without ``tool:``)."""
    channel: str
    """The full channel: ``tool:NAME`` or ``capture:NAME``."""
    args: dict[str, Value]
    """Arguments bound to parameter names."""
    result: Value
    """What the tool returned (as stored), None when it raised."""
    error: RecordedError | None
    """What the tool raised, if it did."""
    event: Event = field(repr=False)
    """The underlying event."""

    @property
    def ok(self) -> bool:
        """True when the tool returned rather than raised."""
        return self.error is None


def _tool_call(ev: Event) -> ToolCall:
    req = ev.request
    args: Any = req.get("args") if isinstance(req, dict) else None
    return ToolCall(ev.seq, ev.channel.split(":", 1)[1], ev.channel,
                    dict(args) if isinstance(args, dict) else {}, ev.response, ev.error, ev)


class RunView:
    """Read-only questions about an event log, in the run's own order (by ``seq``)."""

    def __init__(self, events: Iterable[Event] = ()) -> None:
        self._events: list[Event] = list(events)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, nested: bool = False) -> RunView:
        """The run recorded in the cassette at ``path``.

        Events a tool made while it ran (``parent`` set) are left out unless
        ``nested``: replay serves the tool whole and never makes them.
        """
        events = read_cassette(path).events
        return cls(ev for ev in events if nested or ev.parent is None)

    @property
    def events(self) -> tuple[Event, ...]:
        """Every event, ordered by ``seq``."""
        return tuple(sorted(self._snapshot(), key=lambda ev: ev.seq))

    def _snapshot(self) -> list[Event]:
        return list(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self._snapshot())

    @property
    def channels(self) -> dict[str, int]:
        """How many events each channel has, in order of first use."""
        counts: dict[str, int] = {}
        for ev in self.events:
            counts[ev.channel] = counts.get(ev.channel, 0) + 1
        return counts

    def on(self, channel: str) -> list[Event]:
        """Events of ``channel``; shell-style patterns work (``tool:*``)."""
        if any(c in channel for c in "*?["):
            return [ev for ev in self.events if fnmatch.fnmatchcase(ev.channel, channel)]
        return [ev for ev in self.events if ev.channel == channel]

    @property
    def model_calls(self) -> list[ModelCall]:
        """Every HTTP call to a model API, with its token usage and requested tools."""
        found = (model_call(ev) for ev in self.events if ev.channel.startswith("http"))
        return [mc for mc in found if mc is not None]

    @property
    def usage(self) -> Usage:
        """Token usage (and estimated cost) summed over every model call."""
        total = ZERO
        for mc in self.model_calls:
            total = total + mc.usage
        return total

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Every tool and capture call, in order."""
        return [_tool_call(ev) for ev in self.events if ev.channel.startswith(_TOOL_PREFIXES)]

    def tool(self, name: str) -> list[ToolCall]:
        """The calls of one tool (by name, or by full channel)."""
        return [tc for tc in self.tool_calls if name in (tc.name, tc.channel)]

    def describe(self, limit: int = 50) -> str:
        """One line per event, for assertion messages."""
        events = self.events
        lines = [f"  #{ev.seq} [{ev.task}] {ev.channel}: {summarize(ev)}"
                 for ev in events[:limit]]
        if len(events) > limit:
            lines.append(f"  ... and {len(events) - limit} more")
        return "\n".join(lines) if lines else "  (no events)"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {len(self)} events {self.channels}>"


class LiveRun(RunView):
    """The run a test under ``@pytest.mark.replay`` makes (the ``replay_run`` fixture).

    Its events are those the test's run made (record) or was served (replay),
    added as they happen; events made inside a running tool are left out, as
    replay never makes them.
    """

    def __init__(self, path: str, mode: RecordMode) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.path = path
        """The cassette this test records to or replays from."""
        self.mode = mode
        """The mode this test uses (``auto`` already resolved to record or replay)."""
        self.result: ReplayResult | None = None
        """How the run ended (set when the test body has returned)."""

    @property
    def recording(self) -> bool:
        """True when the test runs live and records (a fixture may start real services)."""
        return self.mode is not RecordMode.REPLAY

    def _add(self, event: Event) -> None:
        if event.parent is None:
            with self._lock:
                self._events.append(event)

    def _snapshot(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def cassette(self, *, nested: bool = False) -> RunView:
        """The cassette file as it is on disk now (after recording: once the test ended)."""
        return RunView.load(self.path, nested=nested)


def _matches(call: ToolCall, args: dict[str, Any]) -> bool:
    return all(key in call.args and call.args[key] == want for key, want in args.items())


def assert_tool_called(view: RunView, name: str, /, *, times: int | None = None,
                       **args: Any) -> list[ToolCall]:
    """Assert the tool ``name`` was called (``times`` times) with at least ``args``.

    Returns the matching calls. The failure message lists the tool calls made.
    """
    calls = view.tool(name)
    matching = [c for c in calls if _matches(c, args)]
    ok = len(matching) == times if times is not None else bool(matching)
    if not ok:
        want = ", ".join(f"{k}={v!r}" for k, v in args.items())
        count = f" {times} time(s)" if times is not None else ""
        made = "\n".join(f"  #{c.seq} {c.channel}({_args(c)})" for c in view.tool_calls)
        raise AssertionError(
            f"expected {name}({want}) to be called{count}; {len(matching)} matching "
            f"call(s) of {len(calls)} call(s) of {name}.\ntool calls made:\n"
            + (made or "  (none)"))
    return matching


def assert_tool_not_called(view: RunView, name: str, /, **args: Any) -> None:
    """Assert no call of the tool ``name`` (with at least ``args``) was made."""
    matching = [c for c in view.tool(name) if _matches(c, args)]
    if matching:
        made = "\n".join(f"  #{c.seq} {c.channel}({_args(c)})" for c in matching)
        raise AssertionError(f"expected no call of {name}; found:\n{made}")


def _args(call: ToolCall) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in call.args.items())
