"""``replay show`` and ``replay verify``: look inside a cassette."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from replay._analysis.summary import summarize
from replay._cassette import read_cassette, verify
from replay._cassette.errors import CassetteError
from replay._cassette.eventlog import EventLog
from replay._cassette.events import Event
from replay._cassette.jsonable import event_json, jsonable
from replay._cassette.reader import open_events
from replay._cassette.redacted import shown
from replay._runs.preflight import cassette_problem, require


def register(sub: Any) -> None:
    """Add ``show`` and ``verify``."""
    show = sub.add_parser("show", help="list a cassette's events, one line each")
    show.add_argument("cassette")
    show.add_argument("--channel", action="append", default=[],
                      help="only these channels (a prefix: 'tool' matches tool:*); repeatable")
    show.add_argument("--json", action="store_true", help="the header and events as JSON")
    show.add_argument("--steps", action="store_true",
                      help="group the events into agent steps: each model call, the tool "
                           "calls it asked for and what they did (docs/steps.md)")
    show.add_argument("--context", type=int, metavar="N",
                      help="what model call #N read: its messages against the previous call "
                           "of its conversation (added, changed, removed, truncated)")
    show.add_argument("--textconv", action="store_true",
                      help="stable text for `git diff` (noise marked, times left out); "
                           "see docs/pytest.md")
    show.set_defaults(func=cmd_show)

    ver = sub.add_parser("verify", help="check a cassette's integrity (exit 1 when damaged)")
    ver.add_argument("cassette")
    ver.add_argument("--json", action="store_true")
    ver.set_defaults(func=cmd_verify)


def _wanted(channel: str, filters: list[str]) -> bool:
    return not filters or any(channel == f or channel.startswith(f + ":")
                              or channel.startswith(f) for f in filters)


def _in_seq_order(events: Sequence[Event], channels: list[str]) -> Iterable[Event]:
    """The events on ``channels`` in ``seq`` order: a packed file's through its index,
    decoded one by one as they are printed (constant memory); others sorted."""
    if isinstance(events, EventLog):
        order = events.seq_order()
        if channels:
            order = [i for i in order if _wanted(events.channel(i), channels)]
        return (events[i] for i in order)
    return sorted((e for e in events if _wanted(e.channel, channels)), key=lambda e: e.seq)


def cmd_show(args: argparse.Namespace) -> int:
    """``replay show``."""
    require(cassette_problem(args.cassette))
    try:
        # a packed file opens through its index (each frame's checksum is checked as it is
        # decoded, so nothing reads the whole file before the first line)
        # holding only the index columns it uses: seq and pos, and chan for --channel
        cassette = (open_events(args.cassette, columns=("chan",) if args.channel else ())
                    or read_cassette(args.cassette, strict=False))
    except CassetteError as exc:
        sys.stderr.write(f"replay: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"replay: {exc}\n")
        return 1
    cassette = shown(cassette)  # redacted with the default rules, whatever it was written with
    if args.textconv:  # for git: what could be read, damage named in the text, exit 0
        from replay._analysis.export.textconv import textconv
        out = sys.stdout
        for line in textconv(cassette):
            out.write(line + "\n")
        return 0
    if args.steps or args.context is not None:
        code = _show_steps(args, cassette.events)
        if cassette.damage is not None:
            sys.stderr.write(f"replay: cassette damaged: {cassette.damage}\n")
            return max(code, 1)
        return code
    events = _in_seq_order(cassette.events, args.channel)
    if args.json:
        from replay._analysis.export.calls import call_json, calls_of, total_json
        h = cassette.header
        events = list(events)
        calls = calls_of(events)
        rows = []
        for ev in events:
            row = event_json(ev)
            if ev.seq in calls:
                row["model_call"] = jsonable(call_json(ev, calls[ev.seq]))
            rows.append(row)
        doc = {"header": jsonable({"version": h.version, "created": h.created,
                                   "argv": list(h.argv), "python": h.python,
                                   "platform": h.platform, "meta": dict(h.meta)}),
               "events": rows,
               "usage": total_json(calls.values()),
               "damage": str(cassette.damage) if cassette.damage else None}
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        try:
            for ev in events:  # a packed file streams: each line as its event is decoded
                flags = " ERR" if ev.error is not None else ""
                nested = f" in #{ev.parent}" if ev.parent is not None else ""
                sys.stdout.write(
                    f"#{ev.seq:<5} {ev.start_ns / 1e6:>10.3f}ms {ev.channel:<18} "
                    f"{ev.task:<14} {summarize(ev, 90)}  ({ev.duration_ns / 1e6:.2f}ms)"
                    f"{flags}{nested}\n")
        except CassetteError as exc:
            sys.stderr.write(f"replay: cassette damaged: {exc}\n")
            return 1
    if cassette.damage is not None:
        sys.stderr.write(f"replay: cassette damaged: {cassette.damage}\n")
        return 1
    return 0


def _show_steps(args: argparse.Namespace, events: Sequence[Event]) -> int:
    """``replay show --steps`` / ``--context N`` (``--channel`` filters the tree's events)."""
    from replay._analysis import stepview
    from replay._analysis.context import context_diff
    from replay._analysis.steps import steps
    if args.context is not None:
        diff = context_diff(events, args.context)
        if diff is None:
            sys.stderr.write(f"replay: event #{args.context} is not a model call "
                             f"(replay show --steps lists them)\n")
            return 2
        if args.json:
            json.dump(jsonable(stepview.context_json(diff)), sys.stdout, indent=1)
            sys.stdout.write("\n")
        else:
            call = next(s.call for s in steps(events) if s.seq == args.context)
            label = f"{call.provider} {call.api} {call.model}" if call is not None else ""
            sys.stdout.write(stepview.context_text(diff, label))
        if not args.steps:
            return 0
    found = steps(events)
    if args.channel:
        found = [dataclasses.replace(s, events=tuple(e for e in s.events
                                                     if _wanted(e.channel, args.channel)))
                 for s in found]
    if args.json:
        json.dump(jsonable(stepview.steps_json(found)), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(stepview.steps_text(found))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``replay verify``."""
    require(cassette_problem(args.cassette, header=False))  # a bad header is its report
    try:
        report = verify(args.cassette)
    except OSError as exc:
        sys.stderr.write(f"replay: {exc}\n")
        return 2
    if args.json:
        json.dump(jsonable(report.as_dict()), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(report.describe() + "\n")
    return 0 if report.status == "complete" else 1
