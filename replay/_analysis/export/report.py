"""The one-file HTML report (``replay report RUN [OTHER] -o report.html``).

The page is the template ``assets/report.html`` with its stylesheet and script
inlined and the run's data embedded as JSON; the script renders it in the browser,
lazily: long lists are virtualised (only the rows on screen exist), payloads are
drawn when their section is opened. Nothing is fetched: the page carries a
Content-Security-Policy that allows no network at all, so it works from a
``file://`` URL and as an email attachment.

Every value comes from a redacted cassette (``shown``) and is drawn with
``textContent``, never as HTML, so a hostile cassette cannot script the page.
Strings of 40 characters or more are stored once in a table and referenced by
index (agents resend the whole conversation on every call: without it the
file would grow with the square of the turns).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from importlib import resources
from typing import Any

from replay._analysis.export.calls import finish_reasons, total_json
from replay._analysis.payloads import view
from replay._analysis.stepdiff import StepDiff, step_diff
from replay._analysis.steps import Step, steps
from replay._analysis.summary import summarize
from replay._analysis.usage import ModelCall, model_call
from replay._cassette.events import Event
from replay._cassette.jsonable import jsonable, short_repr
from replay._cassette.layout import Cassette

SHARED_MIN = 40
"""Strings this long or longer are stored once in the string table."""

VALUE_LIMIT = 200_000
"""The longest string a payload shows (longer ones are cut, and say so)."""


class _Strings:
    """The string table: each long string once, referenced as ``{"$s": index}``."""

    def __init__(self) -> None:
        self.table: list[str] = []
        self.index: dict[str, int] = {}

    def ref(self, text: str) -> Any:
        if len(text) > VALUE_LIMIT:
            text = text[:VALUE_LIMIT] + f"... [{len(text)} characters]"
        if len(text) < SHARED_MIN:
            return text
        at = self.index.get(text)
        if at is None:
            at = self.index[text] = len(self.table)
            self.table.append(text)
        return {"$s": at}

    def walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.ref(value)
        if isinstance(value, dict):
            return {k: self.walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.walk(v) for v in value]
        return value


def _usage(u: Any) -> dict[str, Any] | None:
    if u is None:
        return None
    return {"in": u.input_tokens, "out": u.output_tokens, "cached": u.cached_tokens,
            "cost": u.cost_usd}


def _payload(ev: Event, call: ModelCall | None, strings: _Strings) -> dict[str, Any]:
    shown: dict[str, Any] = dict(view(ev, call))
    if ev.error is not None:
        shown["error"] = {"type": ev.error.type, "message": ev.error.message,
                          "traceback": ev.error.traceback}
    if ev.meta:
        shown["meta"] = dict(ev.meta)
    try:
        data = jsonable(shown)
    except RecursionError:  # nested deeper than the stack: shown as text
        data = {"value": short_repr(shown, 10_000)}
    return strings.walk(data)  # type: ignore[no-any-return]


def _conversation(ev: Event, call: ModelCall, step: int | None, strings: _Strings
                  ) -> dict[str, Any]:
    return {"seq": ev.seq, "step": step, "model": call.model or call.served_model,
            "served": call.served_model, "provider": call.provider,
            "system": strings.ref(call.system),
            "messages": [[role, strings.ref(text)] for role, text in call.messages],
            "output": strings.ref(call.output), "finish": list(finish_reasons(ev)),
            "usage": _usage(call.usage), "streamed": call.streamed}


def run_data(cassette: Cassette, name: str, strings: _Strings,
             run_steps: Sequence[Step] | None = None) -> dict[str, Any]:
    """One run's part of the page data (pass a redacted cassette)."""
    events = sorted(cassette.events, key=lambda e: e.seq)
    if run_steps is None:
        run_steps = steps(events)
    owner: dict[int, int] = {}
    for st in run_steps:
        owner.update((e.seq, st.index) for e in st.events)
    calls: dict[int, ModelCall] = {st.event.seq: st.call for st in run_steps
                                   if st.event is not None and st.call is not None}
    for ev in events:  # model calls nested in a tool are not a step's own
        if ev.channel.startswith("http") and ev.seq not in calls:
            call = model_call(ev)
            if call is not None:
                calls[ev.seq] = call
    cols: dict[str, list[Any]] = {k: [] for k in (
        "seq", "channel", "task", "start", "dur", "parent", "step", "err", "summary", "site",
        "lib")}
    for ev in events:
        cols["seq"].append(ev.seq)
        cols["channel"].append(ev.channel)
        cols["task"].append(ev.task)
        cols["start"].append(ev.start_ns)
        cols["dur"].append(ev.duration_ns)
        cols["parent"].append(ev.parent)
        cols["step"].append(owner.get(ev.seq))
        cols["err"].append(1 if ev.error is not None else 0)
        cols["summary"].append(strings.ref(summarize(ev, 160)))
        cols["site"].append(strings.ref(f"{ev.site.file}:{ev.site.line} {ev.site.function}")
                            if ev.site is not None else None)
        cols["lib"].append(1 if isinstance(ev.meta, dict) and "lib" in ev.meta else 0)
    h = cassette.header
    return {
        "name": name, "created": h.created, "argv": [str(a) for a in h.argv],
        "python": h.python, "platform": h.platform,
        "damage": str(cassette.damage) if cassette.damage else None,
        "usage": total_json(calls.values()),
        "end": max((e.start_ns + e.duration_ns for e in events), default=0),
        "events": cols,
        "payloads": [_payload(ev, calls.get(ev.seq), strings) for ev in events],
        "steps": [{"index": st.index, "kind": st.kind.value, "name": st.name, "seq": st.seq,
                   "task": st.task, "start": st.start_ns, "end": st.end_ns,
                   "usage": _usage(st.usage), "total": _usage(st.total),
                   "events": [e.seq for e in st.events],
                   "tools": [{"id": t.call.id, "name": t.call.name,
                              "event": t.event.seq if t.event is not None else None}
                             for t in st.tools]} for st in run_steps],
        "conversation": [_conversation(ev, call, owner.get(ev.seq), strings)
                         for ev, call in ((e, calls[e.seq]) for e in events
                                          if e.seq in calls)],
    }


def diff_data(d: StepDiff, strings: _Strings) -> dict[str, Any]:
    """The step-aligned diff's part of the page data."""
    first = d.first_divergence
    pairs = []
    for p in d.pairs:
        rows = []
        for r in p.pairs:
            if r.status.value == "same":
                continue
            rows.append({"left": r.left_seq, "right": r.right_seq, "status": r.status.value,
                         "kind": r.kind.value, "differs": r.differs, "channel": r.channel,
                         "what": strings.ref(r.what()),
                         "changes": [[c.path, c.kind, strings.ref(short_repr(c.old, 2000)),
                                      strings.ref(short_repr(c.new, 2000)), k.value]
                                     for c, k in zip(r.changes, r.change_kinds or
                                                     [r.kind] * len(r.changes), strict=False)],
                         "prompt_diff": strings.ref(r.prompt_diff),
                         "output_diff": strings.ref(r.output_diff)})
        pairs.append({"status": p.status.value if p.differs or p.status.value != "changed"
                      else "same", "kind": p.kind.value, "shifted": p.shifted,
                      "differs": p.differs, "what": strings.ref(p.what()), "name": p.name,
                      "left": p.left.index if p.left is not None else None,
                      "right": p.right.index if p.right is not None else None,
                      "rows": rows})
    return {"left": d.left_name, "right": d.right_name, "pairs": pairs,
            "first": d.pairs.index(first) if first is not None else None,
            "counts": d.counts()}


def _asset(name: str) -> str:
    return resources.files("replay._analysis.export").joinpath("assets", name).read_text(
        encoding="utf-8")


def _embed(data: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>``, no ``<!--``)."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(left: Cassette, right: Cassette | None = None, *, left_name: str = "run",
           right_name: str = "other") -> str:
    """The report page for ``left`` (and the step diff against ``right``): pass
    redacted cassettes (``shown``)."""
    strings = _Strings()
    left_steps = steps(sorted(left.events, key=lambda e: e.seq))
    runs = [run_data(left, left_name, strings, left_steps)]
    diff = None
    if right is not None:
        runs.append(run_data(right, right_name, strings))
        diff = diff_data(step_diff(left, right, allow_damaged=True), strings)
    data = {"schema": "agent-replay/report/1", "runs": runs, "diff": diff,
            "strings": strings.table}
    page = _asset("report.html")
    title = left_name if right is None else f"{left_name} vs {right_name}"
    page = page.replace("REPORT_TITLE", _html_text(f"agent-replay: {title}"))
    page = page.replace("/*REPORT_CSS*/", _asset("report.css"))
    head, _, tail = page.partition("/*REPORT_DATA*/")  # the data last: nothing is read in it
    tail = tail.replace("/*REPORT_JS*/", _asset("report.js"))
    return head + _embed(data) + tail


def _html_text(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def write_report(path: str | os.PathLike[str], left: Cassette,
                 right: Cassette | None = None, *, left_name: str = "run",
                 right_name: str = "other") -> int:
    """Write the report to ``path`` atomically; its size in bytes."""
    page = render(left, right, left_name=left_name, right_name=right_name).encode("utf-8")
    tmp = f"{os.fspath(path)}.partial"
    with open(tmp, "wb") as f:
        f.write(page)
    os.replace(tmp, path)
    return len(page)
