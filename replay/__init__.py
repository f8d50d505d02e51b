"""agent-replay: deterministic record/replay debugging for AI agents.

Layers, each using only those before it:

1. format       the event model and the cassette file (``_cassette``)
2. capture      a run in progress: numbering, tasks, call sites, matching, patches (``_capture``)
3. runs         ``record`` / ``play`` runs and their results, forks, stores (``_runs``)
4. analysis     diff, drift, steps, exports: reading event logs (``_analysis``)
5. surfaces     the ``replay`` CLI, the Textual TUI (``tui``), the pytest plugin, services

Only the names in ``__all__`` are public; everything in ``_modules`` may change.

``import replay`` is cheap: each public name is imported from its module the first
time it is used (PEP 562 ``__getattr__``), so ``replay show`` or a test that needs
one function does not pay for the whole package. Type checkers and IDEs read the
``TYPE_CHECKING`` block below. Modules that extend every session when imported
(the drift fingerprint in new cassettes' headers, drift probes) are listed in
``replay._runs.extensions`` here and imported when the first session starts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from replay._runs import extensions as _extensions

_extensions.add("replay._analysis.fingerprint", "replay._analysis.probe")

if TYPE_CHECKING:
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
    from replay._capture.http.netblock import UncapturedConnectionWarning
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
    from replay._cassette import read_cassette as load  # replay.load(path) reads a cassette
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
    from replay._runs.api import ReplayResult, Run, UnconsumedWarning, Unused, play, record, run
    from replay._runs.edit import EditError, edit
    from replay._runs.fork import ParentLink, fork, parent_of
    from replay._service.asgi import RecordingMiddleware
    from replay._service.recorder import flag, recorded
    from replay._service.wsgi import WSGIRecordingMiddleware

_WHERE_BY_MODULE: dict[str, tuple[str, ...]] = {
    "replay._analysis.context": (
        "ContextDiff", "MessageChange", "MessageStatus", "context_diff", "run_context_diffs",
    ),
    "replay._analysis.diff": ("diff",),
    "replay._analysis.drift": ("DriftReport", "Finding", "Severity", "drift", "findings_by_seq"),
    "replay._analysis.export.jsonl": ("export_jsonl",),
    "replay._analysis.export.otlp": ("export_otlp",),
    "replay._analysis.fingerprint": ("Fingerprint", "fingerprint"),
    "replay._analysis.rundiff": ("AlignedPair", "DiffStatus", "RunDiff"),
    "replay._analysis.stepdiff": ("StepDiff", "StepPair", "step_diff"),
    "replay._analysis.steps": ("Step", "StepKind", "StepTool", "steps"),
    "replay._analysis.summary": ("summarize",),
    "replay._analysis.toolcalls": ("ToolResult", "ToolUse"),
    "replay._analysis.usage": ("Usage", "model_call"),
    "replay._capture.exc": ("ReplayedException",),
    "replay._capture.http": ("httpx_transport",),
    "replay._capture.http.netblock": ("UncapturedConnectionWarning",),
    "replay._capture.session": ("RecordMode",),
    "replay._capture.tools": ("ToolInfo", "capture", "registered_tools", "tool"),
    "replay._cassette": (
        "EXTENSION", "Cassette", "EventLog", "Header", "Limits", "VerifyReport", "read_cassette",
        "read_header", "verify", "load",
    ),
    "replay._cassette.divergence": ("Divergence", "Grade"),
    "replay._cassette.errors": (
        "CassetteCorruptError", "CassetteError", "CassetteLimitError", "CassetteTruncatedError",
        "CassetteVersionError", "DivergenceError", "ExportError", "NetworkBlockedError",
        "ReplayError", "SessionError", "UnrecordableValueError",
    ),
    "replay._cassette.events": ("CallSite", "Chunk", "Event", "RecordedError", "Value"),
    "replay._cassette.redact": ("Redactor",),
    "replay._cassette.structdiff": ("Change",),
    "replay._runs.api": (
        "ReplayResult", "Run", "UnconsumedWarning", "Unused", "play", "record", "run",
    ),
    "replay._runs.edit": ("EditError", "edit"),
    "replay._runs.fork": ("ParentLink", "fork", "parent_of"),
    "replay._service.asgi": ("RecordingMiddleware",),
    "replay._service.recorder": ("flag", "recorded"),
    "replay._service.wsgi": ("WSGIRecordingMiddleware",),
}
"""The module each public name comes from (``load`` and ``export_jsonl`` are renamed)."""

_RENAMED = {"load": "read_cassette", "export_jsonl": "write_jsonl"}
_WHERE = {name: module for module, names in _WHERE_BY_MODULE.items() for name in names}

if not TYPE_CHECKING:  # for type checkers every name is imported above

    def __getattr__(name: str) -> Any:
        """Import a public name's module the first time the name is used."""
        module = _WHERE.get(name)
        if module is None:
            raise AttributeError(f"module 'replay' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
    "UncapturedConnectionWarning",
    "UnconsumedWarning",
    "UnrecordableValueError",
    "Unused",
    "Usage",
    "Value",
    "VerifyReport",
    "WSGIRecordingMiddleware",
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
