"""``replay fork`` and ``replay edit``: new runs grown from a recorded one.

    replay fork run.replay --at 12 -o fork.replay -- python agent.py
    replay edit run.replay --event 7 --set in_stock=false -o what-if.replay
    replay play what-if.replay --live -o after.replay -- python agent.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from replay._cassette.structdiff import diff
from replay._cli.run import report_child
from replay._runs.child import command_line, run_child
from replay._runs.preflight import cassette_problem, output_problem, require


def register(sub: Any) -> None:
    """Add ``fork`` and ``edit``."""
    fork = sub.add_parser(
        "fork", help="replay a cassette up to event N, then run live and record the rest",
        description="replay fork run.replay --at N -o new.replay -- python agent.py")
    fork.add_argument("cassette", help="the parent cassette")
    fork.add_argument("--at", type=int, required=True, metavar="N",
                      help="the first event number to run live")
    fork.add_argument("-o", "--output", required=True, help="the new cassette to write")
    fork.add_argument("--live", action="store_true",
                      help="a request that does not match before N runs live instead of "
                      "stopping the run with a divergence")
    fork.add_argument("--unused", choices=["ignore", "warn", "fail"], default="warn",
                      help="events before N the run never asked for (default: warn)")
    fork.add_argument("--no-redact", action="store_true",
                      help="keep secrets in the new cassette")
    fork.set_defaults(func=cmd_fork)

    ed = sub.add_parser(
        "edit", help="copy a cassette with one event's answer changed (what-if)",
        description="replay edit run.replay --event N --set PATH=VALUE -o what-if.replay")
    ed.add_argument("cassette")
    ed.add_argument("--event", type=int, required=True, metavar="N",
                    help="the event whose answer to change")
    ed.add_argument("-o", "--output", required=True, help="the copy to write")
    what = ed.add_argument_group("the change (one or more --set, or one of the others)")
    what.add_argument("--set", dest="fields", action="append", default=[],
                      metavar="PATH=VALUE", help="set a field of the answer (an http "
                      "event: of its JSON body); VALUE is JSON when it parses, else text")
    what.add_argument("--response-json", metavar="JSON",
                      help="the whole answer, as JSON (an http event: its body)")
    what.add_argument("--response-text", metavar="TEXT",
                      help="the whole answer as a string (an http event: its body)")
    what.add_argument("--raise", dest="error", metavar="'module.Type: message'",
                      help="make the call raise this instead")
    ed.add_argument("--no-redact", action="store_true", help="keep secrets in the copy")
    ed.set_defaults(func=cmd_edit)


def cmd_fork(args: argparse.Namespace) -> int:
    """``replay fork``."""
    from replay._runs.fork import link_meta
    command = command_line(args.program)
    require(cassette_problem(args.cassette), output_problem(args.output))
    if os.path.abspath(args.output) == os.path.abspath(args.cassette):
        raise SystemExit("replay: fork writes a new cassette; -o must differ from its parent")
    if args.at < 0:
        raise SystemExit(f"replay: --at must be an event number >= 0, not {args.at}")
    extra: dict[str, Any] = {
        "unused": args.unused, "redact": not args.no_redact,
        "output": os.path.abspath(args.output), "at": args.at, "live": args.live,
        "metadata": link_meta(args.cassette, at=args.at)}
    code, result = run_child("new-events", args.cassette, command, extra=extra)
    out = report_child(code, result)
    if result:
        sys.stderr.write(f"replay: forked {args.cassette} at #{args.at} into {args.output}\n")
    return out


def cmd_edit(args: argparse.Namespace) -> int:
    """``replay edit``."""
    from replay._cassette import read_cassette
    from replay._cassette.redact import DEFAULT as DEFAULT_REDACTOR
    from replay._runs.edit import _UNSET, EditError, edit, parse_value
    given = [x for x in (args.response_json, args.response_text, args.error) if x is not None]
    if len(given) > 1 or (given and args.fields and args.error is not None):
        raise SystemExit("replay edit: give --set, --response-json, --response-text or "
                         "--raise (--set may follow a --response-*)")
    require(cassette_problem(args.cassette), output_problem(args.output))
    response: Any = _UNSET
    if args.response_json is not None:
        try:
            response = json.loads(args.response_json)
        except ValueError as exc:
            raise SystemExit(f"replay edit: --response-json is not JSON: {exc}") from None
    elif args.response_text is not None:
        response = args.response_text
    fields: dict[str, Any] = {}
    for item in args.fields:
        where, eq, value = item.partition("=")
        if not eq or not where:
            raise SystemExit(f"replay edit: --set takes PATH=VALUE, not {item!r}")
        fields[where] = parse_value(value)
    try:
        before = next((e for e in read_cassette(args.cassette).events
                       if e.seq == args.event), None)
        after = edit(args.cassette, event=args.event, output=args.output, response=response,
                     set=fields, error=args.error, redact=not args.no_redact)
    except (EditError, OSError) as exc:
        raise SystemExit(f"replay edit: {exc}") from None
    sys.stderr.write(f"replay: wrote {args.output}: event #{after.seq} {after.channel} "
                     f"edited\n")
    if before is not None:
        before, after = DEFAULT_REDACTOR(before), DEFAULT_REDACTOR(after)  # never print secrets
        old = {"response": before.response, "error": str(before.error or "") or None,
               "body": b"".join(c.data for c in before.chunks) or None}
        new = {"response": after.response, "error": str(after.error or "") or None,
               "body": b"".join(c.data for c in after.chunks) or None}
        for change in diff(old, new)[:20]:
            sys.stderr.write(f"  {change}\n")
    return 0
