"""``replay doctor -- PROGRAM``: is this program's run reproducible under agent-replay?

Records the program once, replays the recording twice (strict, nothing live),
and reports what is not reproducible:

* divergences: the replayed program asked for something the recording does
  not have, with both call sites;
* unexplained output: lines of stdout that differ between the recording and a
  replay although every request was answered from the recording. Something
  the recorder does not capture fed them (a source listed in
  docs/frameworks.md, or one of the program's own: ``id()``, process ids,
  ``time.perf_counter``, another process, a file it reads);
* output in another order: the recording's lines, each the same, in another
  order. Threads or tasks that print as they finish (a library's worker pool)
  ran in another interleaving: replay gives each the same inputs but does not
  impose the recorded scheduling, and live runs differ the same way.

This is how to find out, before trusting a cassette, that a stack has an
uncaptured source. ``--fail-on-findings`` makes findings exit 1, for CI.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

from replay._runs.child import command_line, run_child

REPLAYS = 2


@dataclass
class Findings:
    """What ``replay doctor`` found."""

    divergences: list[str] = field(default_factory=list)
    """Divergence reports of the replays (each once)."""
    output: list[str] = field(default_factory=list)
    """Unified diffs of recorded vs replayed stdout, where no divergence explains them."""
    reordered: list[str] = field(default_factory=list)
    """Such diffs where the replay printed the recording's very lines in another order
    (concurrent printers scheduled otherwise, not an uncaptured input)."""
    failures: list[str] = field(default_factory=list)
    """Replays that exited otherwise than the recording did."""

    @property
    def any(self) -> bool:
        """Whether anything is not reproducible."""
        return bool(self.divergences or self.output or self.reordered or self.failures)


def register(sub: Any) -> None:
    """Add ``doctor``."""
    doc = sub.add_parser(
        "doctor", help="record a program once, replay it twice, report what does not repeat",
        description="replay doctor [--fail-on-findings] -- python agent.py ARGS")
    doc.add_argument("--replays", type=int, default=REPLAYS, metavar="N",
                     help=f"replays of the recording (default {REPLAYS})")
    doc.add_argument("--keep", metavar="PATH", help="keep the recording at PATH")
    doc.add_argument("--fail-on-findings", action="store_true",
                     help="exit 1 when anything is not reproducible (for CI)")
    doc.set_defaults(func=cmd_doctor)


def examine(command: list[str], cassette: str, replays: int = REPLAYS) -> Findings:
    """Record ``command`` into ``cassette``, replay it ``replays`` times, compare."""
    findings = Findings()
    recorded: list[str] = []
    code, _ = run_child("record", cassette, command, capture=recorded)
    sys.stderr.write(f"replay doctor: recorded the program (exit {code}) to {cassette}\n")
    for n in range(1, replays + 1):
        out: list[str] = []
        replay_code, result = run_child("replay", cassette, command,
                                        extra={"unused": "warn"}, capture=out)
        for report in result.get("divergences") or []:
            if report not in findings.divergences:
                findings.divergences.append(report)
        if replay_code != code:
            tail = "\n".join(out[1].splitlines()[-15:])
            findings.failures.append(f"replay {n} exited {replay_code}, the recording {code}:"
                                     f"\n{tail}")
        if out[0] != recorded[0] and not result.get("divergences"):
            diff = "".join(difflib.unified_diff(
                recorded[0].splitlines(keepends=True), out[0].splitlines(keepends=True),
                "recorded stdout", f"replay {n} stdout", n=1))
            same_lines = sorted(out[0].splitlines()) == sorted(recorded[0].splitlines())
            found = findings.reordered if same_lines else findings.output
            if diff not in found:
                found.append(diff)
    return findings


def report(findings: Findings) -> str:
    """The readable report."""
    if not findings.any:
        return "replay doctor: the run repeats exactly: no divergence, the same output"
    lines: list[str] = []
    for text in findings.divergences:
        lines += ["divergence:", *(f"  {line}" for line in text.splitlines())]
    for text in findings.failures:
        lines += ["different exit:", *(f"  {line}" for line in text.splitlines())]
    for text in findings.output:
        lines += ["output differs with every request answered from the recording "
                  "(an input the recorder does not capture; see docs/frameworks.md):",
                  *(f"  {line}" for line in text.splitlines())]
    for text in findings.reordered:
        lines += ["output has the recording's lines in another order, with every request "
                  "answered from the recording (threads or tasks that print as they finish "
                  "ran in another interleaving: scheduling, which replay does not impose; "
                  "see docs/frameworks.md#checked-by-hand):",
                  *(f"  {line}" for line in text.splitlines())]
    n = (len(findings.divergences) + len(findings.failures) + len(findings.output)
         + len(findings.reordered))
    lines.append(f"replay doctor: {n} finding(s): the run does not repeat exactly")
    return "\n".join(lines)


def cmd_doctor(args: argparse.Namespace) -> int:
    """``replay doctor -- PROGRAM``."""
    command = command_line(args.program)
    if args.replays < 1:
        raise SystemExit("replay doctor: --replays must be at least 1")
    with tempfile.TemporaryDirectory(prefix="agent-replay-doctor-") as tmp:
        cassette = args.keep or os.path.join(tmp, "doctor.replay")
        findings = examine(command, cassette, args.replays)
    print(report(findings))
    return 1 if findings.any and args.fail_on_findings else 0
