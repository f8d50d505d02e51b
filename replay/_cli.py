"""The ``replay`` command: a dispatcher over small command modules.

Each module in ``COMMAND_MODULES`` has ``register(subparsers)`` that adds its
sub-commands, each with ``func(args) -> int`` as its handler.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "replay._cli_run",
    "replay._cli_fork",
    "replay._cli_inspect",
    "replay._cli_diff",
    "replay._cli_http",
    "replay._cli_tui",
    "replay._demo",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(
        prog="replay",
        description="Record and replay AI agent runs deterministically.",
    )
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
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
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
