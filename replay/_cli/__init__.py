"""Surface: the ``replay`` command, a dispatcher over small command modules.

Holds one module per command group; each in ``COMMAND_MODULES`` has
``register(subparsers)`` that adds its sub-commands, each with
``func(args) -> int`` as its handler; ``demo`` is the ``make demo`` job.
``COMMANDS`` says which module adds each command, so ``replay show ...``
imports only ``inspect`` (and what it needs), not every command's
dependencies; ``replay --help`` and an unknown command build the whole parser.
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
from typing import NoReturn

from replay._cassette.errors import StoreError
from replay._cli.runs import add_store_option, resolve_args

COMMANDS: dict[str, str] = {
    "record": "replay._cli.run", "play": "replay._cli.run",
    "fork": "replay._cli.fork", "edit": "replay._cli.fork",
    "show": "replay._cli.inspect", "verify": "replay._cli.inspect",
    "diff": "replay._cli.diff", "drift": "replay._cli.diff",
    "import-vcr": "replay._cli.http", "scan": "replay._cli.http",
    "tui": "replay._cli.tui",
    "doctor": "replay._cli.doctor",
    "demo": "replay._cli.demo",
    "ls": "replay._cli.runs", "pull": "replay._cli.runs",
    "export": "replay._cli.export", "report": "replay._cli.export",
}
"""Each command -> the module that adds it (tests/test_cli_dispatch.py checks it)."""

COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))
"""The command modules, in the order ``replay --help`` lists their commands."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: with every command, or only ``command``'s module's."""
    parser = argparse.ArgumentParser(
        prog="replay",
        description="Record and replay AI agent runs deterministically.",
    )
    add_store_option(parser, top=True)
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES if command is None else (COMMANDS[command],):
        importlib.import_module(name).register(sub)
    for each in sub.choices.values():
        add_store_option(each)
    return parser


class _Unparsed(Exception):
    """The argument list is not one :func:`command_named` can read."""


class _Peek(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Unparsed(message)


def command_named(argv: list[str]) -> str | None:
    """The command ``argv`` runs, when it is a known one given with nothing but
    ``--store`` before it; None otherwise (then the whole parser reads ``argv``)."""
    peek = _Peek(prog="replay", add_help=False)
    peek.add_argument("--store")
    peek.add_argument("rest", nargs=argparse.REMAINDER)
    try:
        known, extra = peek.parse_known_args(argv)
    except _Unparsed:
        return None
    rest: list[str] = known.rest
    return rest[0] if not extra and rest and rest[0] in COMMANDS else None


def _ends_here() -> tuple[type[Exception], ...]:
    """Errors that end a command with one line and exit code 2: nothing was opened or run."""
    from replay._runs.child import ProgramNotRun
    from replay._runs.preflight import CassettePathError
    return (CassettePathError, ProgramNotRun, StoreError)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``replay`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    program: list[str] = []
    if "--" in argv:  # everything after the first -- is the program to run
        at = argv.index("--")
        argv, program = argv[:at], argv[at + 1:]
    args = build_parser(command_named(argv)).parse_args(argv)
    args.program = program
    try:
        resolve_args(args)  # run ids and `last` wherever a cassette path goes
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if not isinstance(exc, _ends_here()):
            raise
        sys.stderr.write(f"replay: {exc}\n")
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
