"""``replay ls`` and ``replay pull``: the runs in a store.

The store is ``--store``, else ``$REPLAY_STORE``, else ``.replay/runs``. Every
command that takes a cassette also takes ``last``, ``last~N``, a run id or
its unique start instead (resolved in :func:`resolve_args`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from replay._cassette.errors import StoreError

if TYPE_CHECKING:
    from replay._runs.store import Query, RunRow

RUN_ARGS = ("cassette", "left", "right", "other", "run")
"""The argument names that hold a cassette in some command."""

# Every command imports this module (for the two functions after ``register``),
# so the store (SQLite) and the redaction rules are imported where they are used.


def register(sub: Any) -> None:
    """Add ``ls`` and ``pull``."""
    ls = sub.add_parser("ls", help="list the runs in a store, newest first",
                        description="replay ls [--failed] [--since 2h] [--entry TEXT] "
                                    "[--model PREFIX] [--tool NAME] [--tag TAG] [--json]")
    ls.add_argument("--failed", action="store_true", help="only runs that failed or crashed")
    ls.add_argument("--since", metavar="WHEN",
                    help="only runs started since: a span back from now (30m, 2h, 7d) or "
                         "a UTC date/time (2026-12-03, 2026-12-03T10:00)")
    ls.add_argument("--entry", metavar="TEXT", help="only entries containing TEXT")
    ls.add_argument("--model", metavar="PREFIX", help="only runs that asked for such a model")
    ls.add_argument("--tool", metavar="NAME", help="only runs that called this tool")
    ls.add_argument("--tag", action="append", default=[], metavar="TAG",
                    help="only runs with this tag (repeatable: all of them)")
    ls.add_argument("-n", "--limit", type=int, default=None, metavar="N",
                    help="at most N runs")
    ls.add_argument("--json", action="store_true", help="the rows as a JSON array")
    ls.set_defaults(func=cmd_ls)

    pull = sub.add_parser("pull", help="copy a stored run's cassette out of the store",
                          description="replay pull RUN [-o PATH]: RUN is last, last~N, a "
                                      "run id or its unique start")
    pull.add_argument("ref", metavar="RUN")
    pull.add_argument("-o", "--output", default=None,
                      help="file or folder to write (default: ./ID.replay)")
    pull.set_defaults(func=cmd_pull)


def add_store_option(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``--store`` (on the top-level parser and on each command)."""
    parser.add_argument("--store", metavar="STORE", default=None if top else argparse.SUPPRESS,
                        help="run store for ls/pull and run ids (a folder or s3://bucket/"
                             "prefix; default $REPLAY_STORE or .replay/runs)")


def query_of(args: argparse.Namespace) -> Query:
    """The :class:`Query` ``ls``'s options ask for."""
    from replay._runs.store import Query
    from replay._runs.store.base import parse_since
    return Query(failed=args.failed, since=parse_since(args.since) if args.since else None,
                 entry=args.entry, model=args.model, tool=args.tool, tags=tuple(args.tag),
                 limit=args.limit)


def resolve_args(args: argparse.Namespace) -> None:
    """Replace every run reference among a command's cassette arguments by the path
    of the stored run's cassette (StoreError when the store has no such run)."""
    for name in RUN_ARGS:
        value = getattr(args, name, None)
        if isinstance(value, str) and not os.path.exists(value):  # a file is itself
            from replay._runs.store import resolve
            setattr(args, name, resolve(value, getattr(args, "store", None)))


def _line(row: RunRow) -> str:
    from replay._cassette.redact import DEFAULT
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row.start))
    cost = f"${row.cost:.4f}" if row.cost is not None else "-"
    models = ",".join(row.models) or "-"
    text = (f"{row.id}  {start}  {row.duration:>7.2f}s  {row.status.value:<7}  "
            f"{row.entry}  models={models} tokens={row.tokens} cost={cost}")
    if row.tags:
        text += f" tags={','.join(row.tags)}"
    if row.error:
        text += f"\n    {row.error.splitlines()[0][:160]}"
    return DEFAULT.text(text)


def cmd_ls(args: argparse.Namespace) -> int:
    """``replay ls``."""
    from replay._cassette.redact import DEFAULT
    from replay._runs.store import open_store
    from replay._runs.store.base import rows_json
    try:
        query = query_of(args)
    except ValueError as exc:
        sys.stderr.write(f"replay: {exc}\n")
        return 2
    store = open_store(args.store, create=False)
    rows = store.query(query)
    if args.json:
        sys.stdout.write(DEFAULT.text(rows_json(rows)) + "\n")
        return 0
    for row in rows:
        sys.stdout.write(_line(row) + "\n")
    if not rows:
        sys.stderr.write(f"replay: no runs in {store.url} match\n")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    """``replay pull``."""
    from replay._runs.store import open_store
    store = open_store(args.store, create=False)
    row = store.get(args.ref)
    dest = args.output or os.path.join(os.curdir, row.id + ".replay")
    if os.path.exists(os.path.dirname(os.path.abspath(dest))) is False:
        raise StoreError(f"cannot write {dest}: its folder does not exist")
    written = store.pull(row.id, dest)
    sys.stderr.write(f"replay: pulled run {row.id} ({row.status.value}, {row.entry}) "
                     f"to {written}\n")
    return 0
