"""Drift: where the live context no longer matches the one a cassette was recorded in.

A green replay proves the code still consumes the recording; it cannot say the
recording is still what the world would answer. :func:`drift` finds where it is
stale, in three steps, each opt-in beyond the first:

1. *offline*: the recorded fingerprint (header) against the live process
   (Python, packages, git commit, environment);
2. *replay* (``agent=`` or ``command=``): the agent runs against the recording
   under a lenient replay (:mod:`replay._analysis.probe`) that answers every call with the
   recorded answer at its position and notes each request that changed: model
   id, system prompt (with a text diff), tool schemas (naming the field), prompt
   text, parameters, tool arguments;
3. *probe* (``probe=True``): tools marked ``safe=True`` and HTTP ``GET``/``HEAD``
   to allow-listed hosts run live again and their answers are compared.

Every :class:`Finding` has a kind, a severity, the event number (None for the
context), recorded and live values and one plain sentence.
"""

from __future__ import annotations

import enum
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from replay._analysis.fingerprint import Fingerprint, fingerprint, live_fingerprint
from replay._analysis.payloads import text_diff
from replay._analysis.probe import (
    DriftHolder,
    Observation,
    ProbeResult,
    load_dump,
    probe_http,
    probe_tools,
)
from replay._analysis.usage import ModelCall, model_call
from replay._analysis.wire import api_of
from replay._capture.session import current
from replay._cassette import Cassette, read_cassette
from replay._cassette.errors import DivergenceError, SessionError
from replay._cassette.events import Event, Value
from replay._cassette.redact import DEFAULT
from replay._cassette.structdiff import Change
from replay._cassette.structdiff import diff as structdiff
from replay._runs.api import Run, Unused

KEY_PACKAGES = frozenset({"openai", "anthropic", "httpx", "httpx2", "litellm", "langchain-core",
                          "langgraph", "llama-index-core", "instructor", "pydantic"})
"""Packages whose minor version changes are warnings (others' are info)."""


class Severity(enum.IntEnum):
    """How much a finding should worry you; ordered."""

    INFO = 1
    """Context that changed and may matter (a commit, a patch release)."""
    WARNING = 2
    """The agent would likely behave differently (a prompt, a schema, an SDK release)."""
    ERROR = 3
    """It certainly would (another model, another call order)."""

    @classmethod
    def parse(cls, value: Severity | str) -> Severity:
        """``info``, ``warning`` or ``error`` (any case); ValueError naming them otherwise."""
        if isinstance(value, Severity):
            return value
        try:
            return cls[str(value).upper()]
        except KeyError:
            raise ValueError(f"unknown severity {value!r}; use info, warning or error"
                             ) from None

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Finding:
    """One way the live context differs from the recorded one."""

    kind: str
    """What drifted: ``model``, ``system_prompt``, ``tool_schema``, ``prompt``,
    ``request_param``, ``request``, ``tool_args``, ``call_order``, ``missing_call``,
    ``replay_failed``, ``probe``, ``served_model``, ``system_fingerprint``,
    ``python``, ``platform``, ``package``, ``agent``, ``git``, ``env``."""
    severity: Severity
    """How much it matters."""
    seq: int | None
    """The recorded event it is about; None for the process context."""
    recorded: Value
    """The recorded value."""
    live: Value
    """The live value (None when gone)."""
    message: str
    """One plain sentence."""
    detail: str = ""
    """A unified text diff, or a list of changed fields, when there is one."""
    channel: str | None = None
    """Channel of the event, when there is one."""

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        from replay._cassette.jsonable import jsonable
        return {"kind": self.kind, "severity": str(self.severity), "seq": self.seq,
                "channel": self.channel, "recorded": jsonable(self.recorded),
                "live": jsonable(self.live), "message": self.message,
                "detail": self.detail or None}


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Everything :func:`drift` found about one cassette."""

    cassette: str
    """The cassette checked."""
    findings: tuple[Finding, ...]
    """Every finding: context first, then by event number."""
    recorded: Fingerprint
    """The recorded fingerprint."""
    live: Fingerprint
    """The live process fingerprint."""
    replayed: bool = False
    """True when the agent was replayed leniently against the recording."""
    probed: bool = False
    """True when safe channels were probed live."""

    @property
    def worst(self) -> Severity | None:
        """The highest severity found, None when nothing drifted."""
        return max((f.severity for f in self.findings), default=None)

    def at_least(self, severity: Severity | str) -> tuple[Finding, ...]:
        """Findings at or above ``severity``."""
        level = Severity.parse(severity)
        return tuple(f for f in self.findings if f.severity >= level)

    def by_seq(self) -> dict[int, tuple[Finding, ...]]:
        """Findings about events, keyed by event number (for per-event flags)."""
        out: dict[int, list[Finding]] = {}
        for f in self.findings:
            if f.seq is not None:
                out.setdefault(f.seq, []).append(f)
        return {k: tuple(v) for k, v in sorted(out.items())}

    @property
    def general(self) -> tuple[Finding, ...]:
        """Findings about the process context (no event number)."""
        return tuple(f for f in self.findings if f.seq is None)

    def to_json(self) -> dict[str, Any]:
        """The documented JSON document (docs/drift.md)."""
        counts = {str(s): sum(f.severity is s for f in self.findings) for s in Severity}
        return {"schema": "agent-replay/drift/1", "cassette": self.cassette,
                "replayed": self.replayed, "probed": self.probed,
                "worst": str(self.worst) if self.worst is not None else None,
                "counts": counts, "findings": [f.as_dict() for f in self.findings],
                "recorded": self.recorded.as_dict(), "live": self.live.as_dict()}

    def report(self) -> str:
        """The readable report ``replay drift`` prints."""
        return drift_text(self)


def findings_by_seq(report: DriftReport) -> dict[int, tuple[Finding, ...]]:
    """Findings keyed by event number: what the TUI flags and the pytest plugin reports."""
    return report.by_seq()


# -- context ---------------------------------------------------------------------------
def _version(v: str) -> tuple[str, ...]:
    return tuple(v.split(".")[:2])


def compare_context(rec: Fingerprint, live: Fingerprint) -> list[Finding]:
    """Findings from the recorded process context against the live one."""
    out: list[Finding] = []
    warn, info = Severity.WARNING, Severity.INFO
    if rec.python and live.python and rec.python != live.python:
        sev = warn if _version(rec.python) != _version(live.python) else info
        out.append(Finding("python", sev, None, rec.python, live.python,
                           f"recorded under Python {rec.python}, now {live.python}."))
    if rec.platform and live.platform and rec.platform != live.platform:
        out.append(Finding("platform", info, None, rec.platform, live.platform,
                           f"recorded on {rec.platform}, now {live.platform}."))
    if rec.packages:
        for name in sorted(set(rec.packages) | set(live.packages)):
            old, new = rec.packages.get(name), live.packages.get(name)
            if old == new:
                continue
            if new is None:
                out.append(Finding("package", warn, None, old, None,
                                   f"{name} {old} was installed when recorded; it is not now."))
            elif old is None:
                out.append(Finding("package", info, None, None, new,
                                   f"{name} {new} is installed now; it was not when recorded."))
            else:
                key = name in KEY_PACKAGES and _version(old) != _version(new)
                out.append(Finding("package", warn if key else info, None, old, new,
                                   f"{name} was {old} when recorded, now {new}."))
    ra, la = rec.agent or {}, live.agent or {}
    if ra and la and ra.get("name") == la.get("name") and ra.get("version") != la.get("version"):
        out.append(Finding("agent", info, None, ra.get("version"), la.get("version"),
                           f"the agent package {ra.get('name')} was {ra.get('version')}, "
                           f"now {la.get('version')}."))
    if rec.git_commit and live.git_commit and (rec.git_commit, rec.git_dirty) != (
            live.git_commit, live.git_dirty):
        def git(commit: str, dirty: bool | None) -> str:
            return commit[:12] + (" with uncommitted changes" if dirty else "")
        out.append(Finding("git", info, None, git(rec.git_commit, rec.git_dirty),
                           git(live.git_commit, live.git_dirty),
                           f"the code was at {git(rec.git_commit, rec.git_dirty)} when "
                           f"recorded, now {git(live.git_commit, live.git_dirty)}."))
    if rec.env_names:
        gone = sorted(set(rec.env_names) - set(live.env_names))
        new_names = sorted(set(live.env_names) - set(rec.env_names))
        if gone or new_names:
            out.append(Finding(
                "env", info, None, list[Value](gone), list[Value](new_names),
                "environment variables " + "; ".join(
                    p for p in (f"unset now: {', '.join(gone)}" if gone else "",
                                f"set now: {', '.join(new_names)}" if new_names else "")
                    if p) + "."))
    for name in sorted(set(rec.env_values) | set(live.env_values)):
        old_v, new_v = rec.env_values.get(name), live.env_values.get(name)
        if old_v != new_v:
            out.append(Finding("env", warn, None, old_v, new_v,
                               f"{name} was {old_v!r} when recorded, now {new_v!r}."))
    return out


# -- replay observations -------------------------------------------------------------------
def _fields(changes: Sequence[Change], limit: int = 6) -> str:
    text = "; ".join(str(c) for c in changes[:limit])
    return text + (f"; and {len(changes) - limit} more" if len(changes) > limit else "")


def _model_findings(ev: Event, rec: ModelCall, now: ModelCall) -> list[Finding]:
    out: list[Finding] = []
    seq, ch = ev.seq, ev.channel
    if rec.model != now.model:
        out.append(Finding("model", Severity.ERROR, seq, rec.model, now.model,
                           f"the code now asks for model {now.model!r}; the recording "
                           f"asked for {rec.model!r}.", channel=ch))
    if rec.system != now.system:
        out.append(Finding("system_prompt", Severity.WARNING, seq, rec.system, now.system,
                           "the system prompt changed.",
                           text_diff(rec.system + "\n", now.system + "\n",
                                     "recorded system prompt", "live system prompt"), ch))
    for name in sorted(set(rec.tools) | set(now.tools)):
        old, new = rec.tools.get(name), now.tools.get(name)
        if old == new:
            continue
        if new is None:
            msg = f"tool {name!r} is no longer offered to the model."
            detail = ""
        elif old is None:
            msg = f"tool {name!r} is newly offered to the model."
            detail = ""
        else:
            changes = structdiff(old, new)
            fields = ", ".join(f"{c.path or '(schema)'} {c.kind}" for c in changes[:4])
            msg = (f"tool {name!r} schema changed: {fields}"
                   f"{' and more' if len(changes) > 4 else ''}.")
            detail = _fields(changes, 20)
        out.append(Finding("tool_schema", Severity.WARNING, seq, old, new, msg, detail, ch))
    if rec.messages != now.messages:
        def convo(c: ModelCall) -> str:
            return "".join(f"[{role}]\n{text}\n" for role, text in c.messages)
        out.append(Finding("prompt", Severity.WARNING, seq, list(map(list, rec.messages)),
                           list(map(list, now.messages)), "the prompt messages changed.",
                           text_diff(convo(rec), convo(now), "recorded prompt", "live prompt"),
                           ch))
    if rec.params != now.params:
        changes = structdiff(dict(rec.params), dict(now.params))
        out.append(Finding("request_param", Severity.WARNING, seq, dict(rec.params),
                           dict(now.params), f"request parameters changed: {_fields(changes)}.",
                           channel=ch))
    return out


def _changed(ev: Event, live_request: Value) -> list[Finding]:
    ch = ev.channel
    if ch.startswith("http") and api_of(ev.request) is not None and api_of(
            live_request) is not None:
        rec = model_call(ev)
        now = model_call(Event(ev.seq, ch, live_request, ev.response, chunks=ev.chunks))
        if rec is not None and now is not None:
            found = _model_findings(ev, rec, now)
            if found:
                return found
    changes = structdiff(ev.request, live_request)
    if ch.startswith(("tool:", "capture:")):
        name = ch.split(":", 1)[1]
        return [Finding("tool_args", Severity.WARNING, ev.seq, ev.request, live_request,
                        f"tool {name!r} is now called with other arguments: "
                        f"{_fields(changes)}.", channel=ch)]
    sev = Severity.WARNING if ch.startswith("http") else Severity.INFO
    return [Finding("request", sev, ev.seq, ev.request, live_request,
                    f"the {ch} request changed: {_fields(changes)}.", channel=ch)]


def analyze(events: Mapping[int, Event], observations: Iterable[Observation],
            unconsumed: Iterable[int], exit_note: str | None = None) -> list[Finding]:
    """Findings from what a drift replay saw."""
    out: list[Finding] = []
    stopped = False
    for ob in observations:
        ev = events.get(ob.seq) if ob.seq is not None else None
        if ob.kind == "changed" and ev is not None:
            out += _changed(ev, ob.request)
        elif ob.kind != "changed":
            stopped = True
            if ob.kind == "extra":
                where = (f"where the recording has #{ev.seq} on {ev.channel}" if ev is not None
                         else "after the recording's last event of this task")
                what = f"the code now makes a {ob.channel} call (task {ob.task}) {where}"
            else:  # missing / swapped: recorded calls were skipped
                what = (f"the code skipped recorded calls of task {ob.task} "
                        f"({ob.kind}) around #{ob.seq}")
            out.append(Finding("call_order", Severity.ERROR, ob.seq,
                               ev.request if ev is not None else None, ob.request,
                               f"{what}; the drift replay stopped there.", channel=ob.channel))
    left = sorted(unconsumed)
    if stopped and left:
        out.append(Finding("missing_call", Severity.INFO, None, len(left), None,
                           f"{len(left)} recorded events after the stop were not replayed."))
    else:
        for seq in left:
            ev = events.get(seq)
            if ev is not None:
                out.append(Finding("missing_call", Severity.WARNING, seq, ev.request, None,
                                   f"the code no longer makes recorded call #{seq} "
                                   f"({ev.channel}).", channel=ev.channel))
    if exit_note and not stopped:
        out.append(Finding("replay_failed", Severity.WARNING, None, None, None, exit_note))
    return out


def probe_findings(results: Iterable[ProbeResult]) -> list[Finding]:
    """Findings from live probes whose answers differ from the recorded ones."""
    out: list[Finding] = []
    for p in results:
        if p.error is not None:
            out.append(Finding("probe", Severity.WARNING, p.seq, p.recorded, None,
                               f"probing {p.channel} #{p.seq} failed: {p.error}.",
                               channel=p.channel))
            continue
        if p.recorded == p.live:
            continue
        if p.kind == "model":
            rec = p.recorded if isinstance(p.recorded, dict) else {}
            now = p.live if isinstance(p.live, dict) else {}
            for key, kind, sev in (("model", "served_model", Severity.ERROR),
                                   ("system_fingerprint", "system_fingerprint", Severity.INFO),
                                   ("status", "probe", Severity.WARNING)):
                if rec.get(key) != now.get(key):
                    out.append(Finding(kind, sev, p.seq, rec.get(key), now.get(key),
                                       f"the provider served {key.replace('_', ' ')} "
                                       f"{rec.get(key)!r} when recorded; live it serves "
                                       f"{now.get(key)!r}.", channel=p.channel))
            continue
        changes = structdiff(p.recorded, p.live)
        if p.kind == "http":
            rec = p.recorded if isinstance(p.recorded, dict) else {}
            now = p.live if isinstance(p.live, dict) else {}
            msg = (f"recorded {rec.get('status')!r} with {_brief(rec.get('body'))}, "
                   f"live {now.get('status')!r} with {_brief(now.get('body'))}.")
        else:
            msg = (f"safe tool {p.channel.split(':', 1)[-1]!r} now answers differently: "
                   f"recorded {_brief(p.recorded)}, live {_brief(p.live)}.")
        out.append(Finding("probe", Severity.WARNING, p.seq, p.recorded, p.live, msg,
                           _fields(changes, 20), p.channel))
    return out


def _brief(v: Value, width: int = 60) -> str:
    from replay._analysis.summary import brief
    return brief(v, width)


# -- the whole check ---------------------------------------------------------------------
def _replay_in_process(path: str, agent: Callable[[], object]) -> tuple[
        list[Observation], list[int], str | None]:
    if current() is not None:
        raise SessionError("drift() cannot replay an agent inside another record/play session")
    holder = DriftHolder()
    run = Run(path, "replay", unused=Unused.IGNORE)
    run.options["drift"] = holder
    note: str | None = None
    try:
        with run:
            agent()
    except DivergenceError:
        pass
    except Exception as exc:  # the agent's own failure under the recorded answers
        note = f"the agent raised {type(exc).__name__}: {exc} under drift replay."
    m = holder.matcher
    if m is None:
        return [], [], note
    return list(m.observations), [e.seq for e in m.unconsumed()], note


def _replay_child(path: str, command: Sequence[str], probe: bool) -> tuple[
        list[Observation], list[int], list[ProbeResult], str | None]:
    from replay._runs.child import command_line, run_child
    try:
        argv = command_line(list(command))
    except SystemExit as exc:
        raise ValueError(str(exc.code)) from None
    fd, out = tempfile.mkstemp(prefix="agent-replay-drift-", suffix=".msgpack")
    os.close(fd)
    try:
        code, _result = run_child("replay", path, argv, extra={
            "unused": "ignore", "options": {"drift": out, "probe": probe}})
        try:
            obs, unconsumed, probes = load_dump(out)
        except (OSError, ValueError, KeyError, TypeError):
            return [], [], [], (f"the program under drift replay exited with {code} "
                                "before reporting.")
    finally:
        os.unlink(out)
    note = f"the program exited with {code} under drift replay." if code else None
    return obs, unconsumed, probes, note


def drift(cassette: str | os.PathLike[str] | Cassette, *,
          agent: Callable[[], object] | None = None, command: Sequence[str] | None = None,
          probe: bool = False, probe_models: bool = False, allow_hosts: Iterable[str] = (),
          timeout: float = 10.0, live: Fingerprint | None = None) -> DriftReport:
    """Check where the live context has drifted from the one ``cassette`` was recorded in.

    ``agent`` (a callable run in this process) or ``command`` (a program, as for
    ``replay play``) replays the agent leniently and reports what its requests
    now ask differently. ``probe`` re-runs safe tools and ``GET``/``HEAD`` to
    ``allow_hosts`` live; ``probe_models`` also re-sends one recorded model call
    per model to an allow-listed host. ``live`` replaces the live fingerprint.
    """
    if agent is not None and command is not None:
        raise ValueError("drift: give agent= or command=, not both")
    cas = cassette if isinstance(cassette, Cassette) else read_cassette(cassette)
    recorded = fingerprint(cas)
    live_fp = live if live is not None else live_fingerprint()
    findings = compare_context(recorded, live_fp)
    by_seq = {ev.seq: ev for ev in cas.events}
    probes: list[ProbeResult] = []
    if agent is not None:
        obs, unconsumed, note = _replay_in_process(cas.path, agent)
        findings += analyze(by_seq, obs, unconsumed, note)
    elif command is not None:
        obs, unconsumed, probes, note = _replay_child(cas.path, command, probe)
        findings += analyze(by_seq, obs, unconsumed, note)
    if probe:
        if command is None:
            probes += probe_tools(cas.events)
        probes += probe_http(cas.events, allow_hosts, models=probe_models, timeout=timeout)
        findings += probe_findings(probes)
    findings.sort(key=lambda f: (f.seq is not None, f.seq or 0, -f.severity))
    # Shown, so redacted: live requests and unredacted cassettes may carry keys.
    findings = [replace(f, recorded=DEFAULT.value(f.recorded), live=DEFAULT.value(f.live),
                        message=DEFAULT.text(f.message), detail=DEFAULT.text(f.detail))
                for f in findings]
    return DriftReport(cas.path, tuple(findings), recorded, live_fp,
                       replayed=agent is not None or command is not None, probed=probe)


# -- drift --------------------------------------------------------------------------
def drift_text(report: DriftReport) -> str:
    """The readable drift report: findings grouped when several events share one."""
    lines = [f"drift check of {report.cassette}"
             + (" (agent replayed)" if report.replayed else "")
             + (" (safe channels probed)" if report.probed else "")]
    if not report.findings:
        lines.append("no drift found")
        return "\n".join(lines)
    groups: dict[tuple[str, str, str], list[Finding]] = {}
    for f in report.findings:
        groups.setdefault((f.kind, f.message, f.detail), []).append(f)
    for (kind, message, detail), items in groups.items():
        seqs = [f"#{f.seq}" for f in items if f.seq is not None]
        where = ",".join(seqs[:6]) + ("..." if len(seqs) > 6 else "") if seqs else "-"
        sev = max(f.severity for f in items)
        lines.append(f"{str(sev).upper():<8}{where:<10} {kind:<18} {message}")
        body = detail.splitlines()
        lines += [f"{'':<10}{line}" for line in body[:40]]
        if len(body) > 40:
            lines.append(f"{'':<10}... ({len(body) - 40} more lines)")
    counts = {str(s): 0 for s in sorted({f.severity for f in report.findings}, reverse=True)}
    for f in report.findings:
        counts[str(f.severity)] += 1
    lines.append(f"{len(report.findings)} finding(s): "
                 + ", ".join(f"{n} {name}" for name, n in counts.items()))
    return "\n".join(lines)
