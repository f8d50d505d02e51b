"""``replay export jsonl|otlp`` and ``replay report``: a run leaves for other tools.

RUN is a cassette path or a run of the store (``last``, an id); everything is
redacted with the default rules before it is written or sent.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from replay._analysis.export.jsonl import load_shown, write_jsonl
from replay._cassette.errors import CassetteError, ExportError, StoreError
from replay._cli.runs import add_store_option
from replay._runs.preflight import cassette_problem, require
from replay._runs.store import resolve


def register(sub: Any) -> None:
    """Add ``export`` (``jsonl``, ``otlp``)."""
    exp = sub.add_parser("export", help="write a run as JSON Lines or send it as "
                                        "OpenTelemetry spans (docs/export.md)")
    kinds = exp.add_subparsers(dest="format", metavar="FORMAT", required=True)
    js = kinds.add_parser("jsonl", help="one JSON object per line: the run, its steps, "
                                        "its events")
    js.add_argument("run", metavar="RUN", help="a cassette, or a run id of the store")
    js.add_argument("-o", "--output", help="write here instead of standard output")
    js.set_defaults(func=cmd_jsonl)
    ot = kinds.add_parser("otlp", help="send the run as OpenTelemetry GenAI spans over "
                                       "OTLP/HTTP (needs agent-replay[otel])")
    ot.add_argument("run", metavar="RUN", help="a cassette, or a run id of the store")
    ot.add_argument("--endpoint", help="the receiver's base URL (http://host:4318) or its "
                                       "/v1/traces URL; default: $OTEL_EXPORTER_OTLP_ENDPOINT")
    ot.add_argument("--header", action="append", default=[], metavar="NAME=VALUE",
                    help="a request header (an API key for a hosted backend); repeatable")
    ot.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    ot.add_argument("--service-name", help="the resource's service.name (default: the "
                                           "run's entry point)")
    ot.add_argument("--no-content", action="store_true",
                    help="leave prompts, answers, tool arguments and results out")
    ot.set_defaults(func=cmd_otlp)
    for kind in (js, ot):  # `replay export jsonl last --store DIR` as for other commands
        add_store_option(kind)
    register_report(sub)


def run_path(arg: str, store: str | None = None) -> str:
    """The cassette ``arg`` names (a path, or a run of ``store``), checked."""
    path = resolve(arg, store)
    require(cassette_problem(path))
    return path


def _fail(exc: Exception) -> int:
    sys.stderr.write(f"replay: {exc}\n")
    return 1 if isinstance(exc, ExportError | CassetteError | OSError) else 2


def cmd_jsonl(args: argparse.Namespace) -> int:
    """``replay export jsonl``."""
    try:
        path = run_path(args.run, getattr(args, "store", None))
        if args.output:
            out_dir = os.path.dirname(os.path.abspath(args.output))
            if not os.path.isdir(out_dir):
                raise ExportError(f"cannot write {args.output}: the directory "
                                  f"{os.path.dirname(args.output) or '.'} does not exist")
            tmp = args.output + ".partial"
            with open(tmp, "w", encoding="utf-8") as f:
                write_jsonl(path, f)
            os.replace(tmp, args.output)
        else:
            write_jsonl(path, sys.stdout)
    except StoreError as exc:
        sys.stderr.write(f"replay: {exc}\n")
        return 2
    except (ExportError, CassetteError, OSError) as exc:
        return _fail(exc)
    return 0


def _headers(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name.strip():
            raise ExportError(f"--header takes NAME=VALUE, not {pair!r}")
        out[name.strip()] = value
    return out


def cmd_otlp(args: argparse.Namespace) -> int:
    """``replay export otlp``."""
    from replay._analysis.export.otlp import export_otlp

    try:
        path = run_path(args.run, getattr(args, "store", None))
        sent = export_otlp(load_shown(path), args.endpoint, headers=_headers(args.header),
                           timeout=args.timeout, content=not args.no_content,
                           service_name=args.service_name)
    except StoreError as exc:
        sys.stderr.write(f"replay: {exc}\n")
        return 2
    except (ExportError, CassetteError, OSError) as exc:
        return _fail(exc)
    sys.stdout.write(f"sent {sent} spans of {os.path.basename(path)}\n")
    return 0


def register_report(sub: Any) -> None:
    """Add ``report``."""
    rep = sub.add_parser("report", help="one self-contained HTML file: steps, waterfall, "
                                        "conversation, payloads; with OTHER, the step diff")
    rep.add_argument("run", metavar="RUN", help="a cassette, or a run id of the store")
    rep.add_argument("other", metavar="OTHER", nargs="?",
                     help="a second run: the report adds the step-aligned diff against it")
    rep.add_argument("-o", "--output", default="report.html",
                     help="the file to write (default report.html)")
    rep.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """``replay report``."""
    from replay._analysis.export.report import write_report

    try:
        left = run_path(args.run, getattr(args, "store", None))
        right = run_path(args.other) if args.other else None  # resolved by _cli
        out_dir = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(out_dir):
            raise ExportError(f"cannot write {args.output}: the directory "
                              f"{os.path.dirname(args.output) or '.'} does not exist")
        size = write_report(args.output, load_shown(left),
                            load_shown(right) if right else None,
                            left_name=os.path.basename(left),
                            right_name=os.path.basename(right) if right else "other")
    except StoreError as exc:
        sys.stderr.write(f"replay: {exc}\n")
        return 2
    except (ExportError, CassetteError, OSError) as exc:
        return _fail(exc)
    sys.stdout.write(f"wrote {args.output} ({size / 1e6:.1f} MB): open it in a browser\n")
    return 0
