"""``replay import-vcr`` and ``replay scan``: HTTP cassettes in and secrets out."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from replay._cassette.errors import CassetteError
from replay._runs.preflight import cassette_problem, output_problem, require


def register(sub: Any) -> None:
    """Add ``import-vcr`` and ``scan``."""
    imp = sub.add_parser(
        "import-vcr", help="turn a vcrpy cassette (YAML/JSON) into a replay cassette",
        description="replay import-vcr tests/cassettes/x.yaml -o x.replay")
    imp.add_argument("cassette", help="the vcrpy cassette (.yaml or .json)")
    imp.add_argument("-o", "--output", required=True, help="cassette to write (.replay)")
    imp.add_argument("--no-redact", action="store_true",
                     help="keep secrets (redaction is on by default)")
    imp.set_defaults(func=cmd_import_vcr)

    scan = sub.add_parser(
        "scan", help="list secret-shaped strings in a cassette (exit 1 when any found)",
        description="Looks where redaction looks: sensitive headers, key-bearing query "
                    "parameters, known key shapes in bodies, stream chunks and error text. "
                    "Works on replay cassettes and vcrpy YAML/JSON cassettes.")
    scan.add_argument("cassette")
    scan.add_argument("--pattern", action="append", default=[], metavar="REGEX",
                      help="another secret shape to look for; repeatable")
    scan.add_argument("--json", action="store_true", help="findings as JSON (masked)")
    scan.add_argument("--show", action="store_true",
                      help="print the secrets themselves instead of masked previews")
    scan.set_defaults(func=cmd_scan)


def cmd_import_vcr(args: argparse.Namespace) -> int:
    """``replay import-vcr``."""
    from replay._runs.import_vcr import import_vcr
    require(cassette_problem(args.cassette, header=False), output_problem(args.output))
    try:
        n = import_vcr(args.cassette, args.output, redact=not args.no_redact)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"replay: cannot import {args.cassette}: {exc}\n")
        return 2
    sys.stderr.write(f"replay: imported {n} interactions into {args.output}\n")
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    """``replay scan``: exit 0 clean, 1 secrets found, 2 unreadable."""
    from replay._analysis.scan import scan_file
    require(cassette_problem(args.cassette, header=False))  # vcrpy YAML/JSON too
    try:
        findings, damage = scan_file(args.cassette, patterns=args.pattern)
    except (OSError, ValueError, CassetteError) as exc:
        sys.stderr.write(f"replay: cannot scan {args.cassette}: {exc}\n")
        return 2
    if args.json:
        doc = [{"seq": f.seq, "channel": f.channel, "where": f.where, "kind": f.kind,
                "value": f.value if args.show else f.preview} for f in findings]
        json.dump({"findings": doc, "damage": damage}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for f in findings:
            line = str(f) if not args.show else f"{f} = {f.value}"
            sys.stdout.write(line + "\n")
        sys.stderr.write(f"replay: {len(findings)} secret-shaped string(s) in "
                         f"{args.cassette}\n")
    if damage:
        sys.stderr.write(f"replay: cassette damaged (scanned what was readable): {damage}\n")
    return 1 if findings else 0
