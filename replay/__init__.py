"""agent-replay: deterministic record/replay debugging for AI agents.

Layers, each using only those before it:

1. format       the event model and the cassette file (``_events``, ``_codec``, ``_format``)
2. log          a run in progress: numbering, tasks, call sites, matching (``_session``)
3. interception clock, random, uuid, sleeps, tasks (``_patch``); HTTP; tools (``_tools``)
4. replay       ``record`` / ``play`` runs and their results (``_api``)
5. diff, drift  reading event logs
6. surfaces     the ``replay`` CLI, the Textual TUI (``tui``), the pytest plugin

Only the names in ``__all__`` are public; everything in ``_modules`` may change.
"""

from __future__ import annotations

from replay import _breakpoint  # noqa: F401 - registers the break_at session hook
from replay._api import ReplayResult, Run, UnconsumedWarning, Unused, play, record, run
from replay._diff import AlignedPair, DiffStatus, RunDiff, diff
from replay._divergence import Divergence, Grade
from replay._drift import DriftReport, Finding, Severity, drift, findings_by_seq
from replay._edit import EditError, edit
from replay._errors import (
    CassetteCorruptError,
    CassetteError,
    CassetteLimitError,
    CassetteTruncatedError,
    CassetteVersionError,
    DivergenceError,
    NetworkBlockedError,
    ReplayError,
    SessionError,
    UnrecordableValueError,
)
from replay._events import CallSite, Chunk, Event, RecordedError, Value
from replay._exc import ReplayedException
from replay._fingerprint import Fingerprint, fingerprint
from replay._fork import ParentLink, fork, parent_of
from replay._format import (
    EXTENSION,
    Cassette,
    Header,
    Limits,
    VerifyReport,
    read_cassette,
    read_header,
    verify,
)
from replay._http import httpx_transport
from replay._redact import Redactor
from replay._session import RecordMode
from replay._structdiff import Change
from replay._summary import summarize
from replay._tools import ToolInfo, capture, registered_tools, tool
from replay._usage import Usage, model_call

load = read_cassette
"""Alias: ``replay.load(path)`` reads a cassette (see :func:`read_cassette`)."""

__all__ = [
    "EXTENSION",
    "AlignedPair",
    "CallSite",
    "Cassette",
    "CassetteCorruptError",
    "CassetteError",
    "CassetteLimitError",
    "CassetteTruncatedError",
    "CassetteVersionError",
    "Change",
    "Chunk",
    "DiffStatus",
    "Divergence",
    "DivergenceError",
    "DriftReport",
    "EditError",
    "Event",
    "Finding",
    "Fingerprint",
    "Grade",
    "Header",
    "Limits",
    "NetworkBlockedError",
    "ParentLink",
    "RecordMode",
    "RecordedError",
    "Redactor",
    "ReplayError",
    "ReplayResult",
    "ReplayedException",
    "Run",
    "RunDiff",
    "SessionError",
    "Severity",
    "ToolInfo",
    "UnconsumedWarning",
    "UnrecordableValueError",
    "Unused",
    "Usage",
    "Value",
    "VerifyReport",
    "capture",
    "diff",
    "drift",
    "edit",
    "findings_by_seq",
    "fingerprint",
    "fork",
    "httpx_transport",
    "load",
    "model_call",
    "parent_of",
    "play",
    "read_cassette",
    "read_header",
    "record",
    "registered_tools",
    "run",
    "summarize",
    "tool",
    "verify",
]
