"""``replay record`` and ``replay play``: run any Python program under a session.

The program runs in a child process started with PYTHONPATH pointing at
``replay/_boot`` and the run described in ``AGENT_REPLAY_BOOT``, so nothing in
the program changes. ``python``/``python3`` as the command mean the
interpreter agent-replay runs in. Processes the program itself starts are not
recorded.

The cassette and the output are checked before the program starts
(``replay._runs.preflight``): a path that cannot be used, or a session that
cannot start in the child, ends the command with one line and exit code 2, and
the program does not run.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from replay._capture.session import RecordMode
from replay._cassette import read_header
from replay._cassette.errors import CassetteError
from replay._runs.child import command_line, run_child, run_entry
from replay._runs.entry import EntryError, entry_of
from replay._runs.preflight import cassette_problem, require, run_problem


def register(sub: Any) -> None:
    """Add ``record`` and ``play``."""
    rec = sub.add_parser("record", help="record a program's run into a cassette",
                         description="replay record -o run.replay -- python agent.py ARGS")
    rec.add_argument("-o", "--output", required=True, help="cassette to write (.replay)")
    rec.add_argument("--no-redact", action="store_true",
                     help="keep secrets in the cassette (redaction is on by default)")
    rec.set_defaults(func=cmd_record)

    play = sub.add_parser("play", help="replay a cassette under a program (or a stored "
                          "run through its recorded entry point)",
                          description="replay play run.replay -- python agent.py ARGS; "
                                      "replay play RUN (a run recorded by @replay.recorded "
                                      "or the ASGI middleware: last, an id) calls its entry "
                                      "point again in a fresh process")
    play.add_argument("cassette")
    play.add_argument("--unused", choices=["ignore", "warn", "fail"], default="warn",
                      help="recorded events the run never asked for (default: warn)")
    play.add_argument("--allow-damaged", action="store_true",
                      help="replay what a truncated cassette holds")
    play.add_argument("--break", dest="break_at", type=int, action="append", default=[],
                      metavar="N", help="open the debugger in the agent's frame when it asks "
                      "for event N (repeatable; honours PYTHONBREAKPOINT)")
    play.add_argument("--mode", choices=[m.value for m in RecordMode], default="replay",
                      help="replay (default: strict, no network), auto (replay if the "
                      "cassette exists, else record), new-events (replay what matches, run "
                      "and record the rest), record")
    play.add_argument("--live", action="store_true", help="the same as --mode new-events")
    play.add_argument("--pace", type=pace, default=None, metavar="PACE",
                      help="instant (default: recorded sleeps and streams at once), "
                      "recorded (at the recorded pace), or a speed factor (2: twice as "
                      "fast, 0.5: half as fast)")
    play.add_argument("-o", "--output", help="where a recording mode writes (default: the "
                      "cassette itself)")
    play.set_defaults(func=cmd_play)


def pace(text: str) -> float | None:
    """``--pace``: ``instant`` (None), ``recorded`` (1.0) or a speed factor > 0."""
    word = text.strip().lower()
    if word == "instant":
        return None
    if word == "recorded":
        return 1.0
    try:
        factor = float(word.rstrip("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a pace: {text!r} (instant, recorded, or a speed factor such as 2 or 0.5)"
        ) from None
    if not factor > 0 or factor == float("inf"):
        raise argparse.ArgumentTypeError(f"a speed factor is > 0, not {text!r}")
    return factor


def timing(result: dict[str, Any]) -> str:
    """`` in 0.41 s, 5.2x faster than the recorded 2.16 s`` (empty without figures).

    The recorded figure spans the session's start to its last event's end; the
    replay's, its start to its end, so it also counts the program's start-up
    and whatever it did after its last event. A replay slower than the recording
    is therefore that difference (imports in a fresh process, say), not the
    replay's pace: it is shown as the two figures, not as "N x slower"."""
    took, recorded = result.get("elapsed_ns"), result.get("recorded_ns")
    if not isinstance(took, int) or not isinstance(recorded, int) or took <= 0:
        return ""
    out = f" in {took / 1e9:.2f} s"
    if recorded <= 0:
        return out
    ratio = recorded / took
    if ratio >= 1.05:
        return out + f", {ratio:.1f}x faster than the recorded {recorded / 1e9:.2f} s"
    if ratio > 1 / 1.05:
        return out + f", as fast as the recorded {recorded / 1e9:.2f} s"
    return out + (f" (the recorded events span {recorded / 1e9:.2f} s; a replay's time "
                  "also counts the program's start-up)")


def _died(code: int) -> str | None:
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return None


def cmd_record(args: argparse.Namespace) -> int:
    """``replay record``."""
    command = command_line(args.program)
    code, result = run_child("record", args.output, command,
                             extra={"redact": not args.no_redact})
    if not result:
        sig = _died(code)
        partial = os.path.abspath(args.output) + ".partial"
        why = f"was killed by {sig}" if sig else f"exited with {code} before closing"
        if os.path.exists(partial):
            sys.stderr.write(f"replay: the program {why}; the events it completed are in "
                             f"{partial} (replay verify {partial})\n")
        else:  # e.g. not a Python program, or one run by another interpreter
            sys.stderr.write(f"replay: the program {why} and recorded nothing (no "
                             f"{partial}): was it run by this Python?\n")
        return code if code > 0 else 1
    sys.stderr.write(f"replay: recorded {result.get('recorded', 0)} events to "
                     f"{args.output}\n")
    return code


def cmd_play(args: argparse.Namespace) -> int:
    """``replay play``."""
    if not args.program:  # a stored run: its entry point is the program
        return play_entry(args)
    command = command_line(args.program)
    mode = RecordMode.parse(args.mode)
    if args.live:
        if mode not in (RecordMode.REPLAY, RecordMode.NEW_EVENTS):
            raise SystemExit(f"replay: --live is --mode new-events, not {mode.value}")
        mode = RecordMode.NEW_EVENTS
    if args.output and mode is RecordMode.REPLAY:
        raise SystemExit("replay: -o is for the recording modes (strict replay writes nothing)")
    extra: dict[str, Any] = {"unused": args.unused, "allow_damaged": args.allow_damaged,
                             "output": os.path.abspath(args.output or args.cassette)}
    require(run_problem(mode, args.cassette, output=args.output or args.cassette))
    if os.path.exists(args.cassette):
        extra.update(play_options(args))
    elif args.break_at:
        raise SystemExit(f"replay: --break needs the cassette, and {args.cassette} is missing")
    if args.pace is not None:
        extra.setdefault("options", {})["speed"] = args.pace
    code, result = run_child(mode.value, args.cassette, command, extra=extra)
    return report_child(code, result)


def play_entry(args: argparse.Namespace) -> int:
    """``replay play RUN`` with no program: call the run's recorded entry point again
    in a fresh process."""
    require(cassette_problem(args.cassette))
    try:
        entry_of(read_header(args.cassette).meta, args.cassette)
    except (EntryError, CassetteError) as exc:
        sys.stderr.write(f"replay: {exc}\n")
        return 2
    if args.live or args.mode != "replay" or args.output:
        raise SystemExit("replay: a stored run's entry point replays strictly; "
                         "--live, --mode and -o need the program after --")
    extra: dict[str, Any] = {"unused": args.unused, "allow_damaged": args.allow_damaged}
    extra.update(play_options(args))
    code, result = run_entry("replay", args.cassette, extra=extra)
    return report_child(code, result)


def report_child(code: int, result: dict[str, Any]) -> int:
    """Print a replaying child's outcome; the exit code for the command."""
    if not result:
        sys.stderr.write(f"replay: the program ended before the replay finished "
                         f"(exit {code})\n")
        return code if code != 0 else 1
    divergences = result.get("divergences") or []
    line = (f"replay: served {result.get('consumed', 0)} events{timing(result)}; "
            f"{result.get('unconsumed', 0)} unused, {len(divergences)} divergence(s)")
    if result.get("error"):
        line += " (reported above)"
    if result.get("reordered"):
        line += f", {result['reordered']} in another task interleaving (accepted)"
    if result.get("output"):
        line += (f"; wrote {result.get('recorded', 0)} events ({result.get('live', 0)} live) "
                 f"to {result['output']}")
    if result.get("error"):  # once, after everything the program printed
        sys.stderr.write(result["error"] + "\n")
    sys.stderr.write(line + "\n")
    return (code or 1) if result.get("error") else code


def play_options(args: argparse.Namespace) -> dict[str, Any]:
    """Run options from the command line: breakpoints (checked against the cassette)."""
    points = list(getattr(args, "break_at", None) or [])
    if not points:
        return {}
    from replay._runs.breakpoint import check_points
    problem = check_points(args.cassette, points)
    if problem:
        raise SystemExit(f"replay: {problem}")
    return {"options": {"break_at": points}}
