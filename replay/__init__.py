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

from replay._analysis.context import (
    ContextDiff,
    MessageChange,
    MessageStatus,
    context_diff,
    run_context_diffs,
)
from replay._analysis.diff import diff
from replay._analysis.drift import DriftReport, Finding, Severity, drift, findings_by_seq
from replay._analysis.export.jsonl import write_jsonl as export_jsonl
from replay._analysis.export.otlp import export_otlp
from replay._analysis.fingerprint import Fingerprint, fingerprint
from replay._analysis.rundiff import AlignedPair, DiffStatus, RunDiff
from replay._analysis.stepdiff import StepDiff, StepPair, step_diff
from replay._analysis.steps import Step, StepKind, StepTool, steps
from replay._analysis.summary import summarize
from replay._analysis.toolcalls import ToolResult, ToolUse
from replay._analysis.usage import Usage, model_call
from replay._capture.exc import ReplayedException
from replay._capture.http import httpx_transport
from replay._capture.session import RecordMode
from replay._capture.tools import ToolInfo, capture, registered_tools, tool
from replay._cassette import (
    EXTENSION,
    Cassette,
    EventLog,
    Header,
    Limits,
    VerifyReport,
    read_cassette,
    read_header,
    verify,
)
from replay._cassette.divergence import Divergence, Grade
from replay._cassette.errors import (
    CassetteCorruptError,
    CassetteError,
    CassetteLimitError,
    CassetteTruncatedError,
    CassetteVersionError,
    DivergenceError,
    ExportError,
    NetworkBlockedError,
    ReplayError,
    SessionError,
    UnrecordableValueError,
)
from replay._cassette.events import CallSite, Chunk, Event, RecordedError, Value
from replay._cassette.redact import Redactor
from replay._cassette.structdiff import Change
from replay._runs import breakpoint as _breakpoint  # noqa: F401 - registers the break_at hook
from replay._runs.api import ReplayResult, Run, UnconsumedWarning, Unused, play, record, run
from replay._runs.edit import EditError, edit
from replay._runs.fork import ParentLink, fork, parent_of
from replay._service.asgi import RecordingMiddleware
from replay._service.recorder import flag, recorded

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
    "ContextDiff",
    "DiffStatus",
    "Divergence",
    "DivergenceError",
    "DriftReport",
    "EditError",
    "Event",
    "EventLog",
    "ExportError",
    "Finding",
    "Fingerprint",
    "Grade",
    "Header",
    "Limits",
    "MessageChange",
    "MessageStatus",
    "NetworkBlockedError",
    "ParentLink",
    "RecordMode",
    "RecordedError",
    "RecordingMiddleware",
    "Redactor",
    "ReplayError",
    "ReplayResult",
    "ReplayedException",
    "Run",
    "RunDiff",
    "SessionError",
    "Severity",
    "Step",
    "StepDiff",
    "StepKind",
    "StepPair",
    "StepTool",
    "ToolInfo",
    "ToolResult",
    "ToolUse",
    "UnconsumedWarning",
    "UnrecordableValueError",
    "Unused",
    "Usage",
    "Value",
    "VerifyReport",
    "capture",
    "context_diff",
    "diff",
    "drift",
    "edit",
    "export_jsonl",
    "export_otlp",
    "findings_by_seq",
    "fingerprint",
    "flag",
    "fork",
    "httpx_transport",
    "load",
    "model_call",
    "parent_of",
    "play",
    "read_cassette",
    "read_header",
    "record",
    "recorded",
    "registered_tools",
    "run",
    "run_context_diffs",
    "step_diff",
    "steps",
    "summarize",
    "tool",
    "verify",
]
