"""``replay tui FILE [OTHER]``: browse a run in the terminal UI, or two side by side.

Textual is imported only when the command runs, so the rest of the ``replay``
command (and ``import replay``) never loads it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from replay._runs.preflight import cassette_problem, require

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
    p.add_argument("--findings", metavar="JSON", default=None,
                   help="flag events named in a 'replay drift --json' report as drift, "
                        "with each finding's sentence in the detail pane")
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


def read_findings(path: str) -> tuple[dict[int, set[str]], dict[int, list[str]]]:
    """Flags and notes by seq from a ``replay drift --json`` document.

    Findings about the process context (no event) are left out; ValueError
    when the file is not such a document.
    """
    with open(path, encoding="utf-8") as f:
        try:
            doc = json.load(f)
        except ValueError as exc:
            raise ValueError(f"{path} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not str(doc.get("schema", "")).startswith(
            "agent-replay/drift/") or not isinstance(doc.get("findings"), list):
        raise ValueError(f"{path} is not a 'replay drift --json' report")
    flags: dict[int, set[str]] = {}
    notes: dict[int, list[str]] = {}
    for item in doc["findings"]:
        seq = item.get("seq") if isinstance(item, dict) else None
        if type(seq) is not int:
            continue
        flags.setdefault(seq, set()).add("drift")
        notes.setdefault(seq, []).append(
            f"drift ({item.get('severity', '?')}, {item.get('kind', '?')}): "
            f"{item.get('message', '')}{_finding_diff(item)}")
    return flags, notes


def _finding_diff(item: dict[str, Any]) -> str:
    """What changed, after a newline: the finding's own diff, else recorded vs live."""
    detail = item.get("detail")
    if isinstance(detail, str) and detail.strip():
        return "\n" + detail.rstrip("\n")
    if "recorded" not in item and "live" not in item:
        return ""
    def one(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return f"\n- recorded: {one(item.get('recorded'))}\n+ live:     {one(item.get('live'))}"


def cmd_tui(args: argparse.Namespace) -> int:
    """``replay tui``."""
    try:
        start_at = parse_at(args.at)
        flags, notes = read_findings(args.findings) if args.findings else ({}, {})
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"replay: {exc}\n")
        return 2
    require(*(cassette_problem(p) for p in (args.cassette, args.other) if p is not None))
    from tui.app import ReplayApp  # Textual loads here, and only here

    ReplayApp(args.cassette, args.other, flags=flags, notes=notes, start_at=start_at).run()
    return 0
