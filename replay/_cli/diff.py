"""``replay diff`` and ``replay drift``: compare two runs, or a run with the live world.

Exit codes, for CI: ``diff`` 0 same, 1 the runs differ, 2 error; ``drift`` 0 no
finding at or above ``--fail-on``, 1 some, 2 error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from replay._cassette.errors import CassetteError
from replay._runs.preflight import cassette_problem, require


def register(sub: Any) -> None:
    """Add ``diff`` and ``drift``."""
    d = sub.add_parser(
        "diff", help="align two runs event by event and show how they differ",
        description="replay diff LEFT RIGHT: the first divergence (the first input or "
                    "behaviour change; noise such as ids and clock values is counted "
                    "apart), every changed, moved, added and removed event, payload, "
                    "timing and token/cost deltas. "
                    "Exit 0 when the runs are the same, 1 when they differ, 2 on error.")
    d.add_argument("left", help="cassette of the left (reference) run")
    d.add_argument("right", help="cassette of the right run")
    d.add_argument("--json", action="store_true",
                   help="print the JSON document (schema agent-replay/diff/2, docs/diff.md)")
    d.add_argument("--all", action="store_true", help="list same events too")
    d.add_argument("--ignore", action="append", default=[], metavar="PATH",
                   help="change path prefix that does not count (response.body.id); "
                        "repeatable")
    d.add_argument("--ignore-channel", action="append", default=[], metavar="CHANNEL",
                   help="leave this channel's events out (a name or pattern: clock, "
                        "'tool:*'); repeatable")
    d.add_argument("--include-noise", action="store_true",
                   help="count noise (ids, clock, random and uuid values, headers) as a "
                        "difference, and list it")
    d.add_argument("--max-changes", type=int, default=12, metavar="N",
                   help="changes shown per event in the text report (default 12)")
    d.add_argument("--allow-damaged", action="store_true",
                   help="diff what truncated cassettes hold")
    d.set_defaults(func=cmd_diff)

    r = sub.add_parser(
        "drift", help="check whether a recording is stale against the live context",
        description="replay drift FILE [OPTIONS] [-- python agent.py]: compares the recorded "
                    "context fingerprint with the live one; with a program, replays it "
                    "leniently and reports what the code now asks differently; --probe "
                    "re-runs safe tools and GET/HEAD to --allow-host hosts live. Exit 1 when "
                    "a finding is at or above --fail-on, 2 on error.")
    r.add_argument("cassette")
    _drift_options(r)
    r.set_defaults(func=cmd_drift)


def _drift_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--probe", action="store_true",
                   help="re-run live the channels marked safe (safe tools; GET/HEAD to "
                        "allowed hosts)")
    p.add_argument("--probe-models", action="store_true",
                   help="also re-send one recorded model call per model to an allowed host, "
                        "to see which model is served now (costs tokens)")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                   help="host (or host:port) that probes may reach; repeatable")
    p.add_argument("--fail-on", choices=["info", "warning", "error"], default="warning",
                   help="lowest severity that makes the exit code 1 (default warning)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per probe request")
    p.add_argument("--json", action="store_true",
                   help="print the JSON document (schema agent-replay/drift/1, docs/drift.md)")


@contextlib.contextmanager
def _stdout_to_stderr(active: bool) -> Iterator[None]:
    """Send the replayed program's output to stderr, so stdout holds only the JSON."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _fail(exc: BaseException) -> int:
    sys.stderr.write(f"replay: {exc}\n")
    return 2


def cmd_diff(args: argparse.Namespace) -> int:
    """``replay diff``."""
    from replay._analysis.diff import diff
    from replay._analysis.stepdiff import step_diff
    from replay._cassette import read_cassette
    from replay._cassette.redacted import shown
    require(cassette_problem(args.left), cassette_problem(args.right))
    try:  # compared as shown: redacted with the default rules, whatever they were written with
        left, right = (shown(read_cassette(p, strict=not args.allow_damaged))
                       for p in (args.left, args.right))
        result = diff(left, right, ignore=args.ignore, ignore_channels=args.ignore_channel,
                      include_noise=args.include_noise, allow_damaged=args.allow_damaged)
        by_step = step_diff(left, right, ignore=args.ignore,
                            ignore_channels=args.ignore_channel,
                            include_noise=args.include_noise, allow_damaged=args.allow_damaged)
    except (CassetteError, OSError, ValueError) as exc:
        return _fail(exc)
    if args.json:
        doc = result.to_json(include_same=args.all)
        doc["steps"] = by_step.to_json()
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(result.report(include_same=args.all,
                                       max_changes=args.max_changes) + "\n")
        sys.stdout.write("\n" + by_step.report(include_same=args.all) + "\n")
    return 0 if result.same else 1


def cmd_drift(args: argparse.Namespace) -> int:
    """``replay drift``."""
    from replay._analysis.drift import drift
    command = list(getattr(args, "program", None) or [])  # after ``--`` (see _cli.main)
    require(cassette_problem(args.cassette))
    try:
        with _stdout_to_stderr(args.json and bool(command)):
            report = drift(args.cassette, command=command or None, probe=args.probe,
                           probe_models=args.probe_models, allow_hosts=args.allow_host,
                           timeout=args.timeout)
    except (CassetteError, OSError, ValueError) as exc:
        return _fail(exc)
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(report.report() + "\n")
    return 1 if report.at_least(args.fail_on) else 0
