"""Surface: the ``replay`` command, a dispatcher over small command modules.

Holds one module per command group; each in ``COMMAND_MODULES`` has
``register(subparsers)`` that adds its sub-commands, each with
``func(args) -> int`` as its handler; ``demo`` is the ``make demo`` job.
A path that cannot be used (``replay._runs.preflight``) or a program whose
session did not start ends the command here with one line and exit code 2.

May import every layer below (``_cassette``, ``_capture``, ``_runs``,
``_analysis``); ``replay tui`` imports ``tui`` lazily, which in turn sees only
``replay``'s public names. Nothing imports this package but the console script.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from replay._cassette.errors import StoreError
from replay._cli.runs import add_store_option, resolve_args
from replay._runs.child import ProgramNotRun
from replay._runs.preflight import CassettePathError

COMMAND_MODULES = (
    "replay._cli.run",
    "replay._cli.fork",
    "replay._cli.inspect",
    "replay._cli.diff",
    "replay._cli.http",
    "replay._cli.tui",
    "replay._cli.doctor",
    "replay._cli.demo",
    "replay._cli.runs",
    "replay._cli.export",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(
        prog="replay",
        description="Record and replay AI agent runs deterministically.",
    )
    add_store_option(parser, top=True)
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for command in sub.choices.values():
        add_store_option(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``replay`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    program: list[str] = []
    if "--" in argv:  # everything after the first -- is the program to run
        at = argv.index("--")
        argv, program = argv[:at], argv[at + 1:]
    args = build_parser().parse_args(argv)
    args.program = program
    try:
        resolve_args(args)  # run ids and `last` wherever a cassette path goes
        code: int = args.func(args)
    except (CassettePathError, ProgramNotRun, StoreError) as exc:  # nothing was opened or run
        sys.stderr.write(f"replay: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
