"""``replay tui FILE [OTHER]``: browse a run in the terminal UI, or two side by side.

Textual is imported only when the command runs, so the rest of the ``replay``
command (and ``import replay``) never loads it.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

FLAG_WORDS = ("error", "divergence", "drift")


def register(sub: Any) -> None:
    """Add ``tui``."""
    p = sub.add_parser(
        "tui", help="browse a cassette in the terminal UI (give two to compare them)",
        description="Step through a recorded run: timeline, payloads, conversation, stream "
                    "playback, search and filters. With OTHER, events that differ are "
                    "flagged and 'c' opens the side-by-side diff. Press ? for every key.")
    p.add_argument("cassette", help="the run to show")
    p.add_argument("other", nargs="?", help="a second run to compare with (e.g. a replay)")
    p.add_argument("--at", metavar="WHERE", default=None,
                   help="start at event number N, or at the first 'error', 'divergence' "
                        "or 'drift'")
    p.set_defaults(func=cmd_tui)


def parse_at(value: str | None) -> int | str | None:
    """``--at``: an event number or a flag word; ValueError otherwise."""
    if value is None:
        return None
    if value.lstrip("#").isdigit():
        return int(value.lstrip("#"))
    if value in FLAG_WORDS:
        return value
    raise ValueError(f"--at takes an event number or one of {', '.join(FLAG_WORDS)}, "
                     f"not {value!r}")


def cmd_tui(args: argparse.Namespace) -> int:
    """``replay tui``."""
    try:
        start_at = parse_at(args.at)
    except ValueError as exc:
        sys.stderr.write(f"replay: {exc}\n")
        return 2
    for path in (args.cassette, args.other):
        if path is not None and not os.path.isfile(path):
            sys.stderr.write(f"replay: no such cassette: {path}\n")
            return 2
    from tui.app import ReplayApp  # Textual loads here, and only here

    ReplayApp(args.cassette, args.other, start_at=start_at).run()
    return 0
