"""The SQLite index of a run store: one row per run (stdlib ``sqlite3``).

WAL journaling and a busy timeout make it safe for several processes (and
threads: one connection per thread) to add and read runs at once. Lists are
JSON arrays, filtered with SQLite's ``json_each``; :meth:`RunIndex.query`
agrees with :meth:`Query.matches <replay._runs.store.base.Query.matches>`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from typing import Any

from replay._cassette.errors import StoreError
from replay._runs.store.base import Query, RunRow, RunStatus

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    entry TEXT NOT NULL,
    start REAL NOT NULL,
    duration REAL NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    models TEXT NOT NULL DEFAULT '[]',
    tools TEXT NOT NULL DEFAULT '[]',
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL,
    tags TEXT NOT NULL DEFAULT '[]',
    attrs TEXT NOT NULL DEFAULT '{}',
    size INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_start ON runs (start);
"""

COLUMNS = ("id", "entry", "start", "duration", "status", "error", "models", "tools",
           "input_tokens", "output_tokens", "tokens", "cost", "tags", "attrs", "size")


class RunIndex:
    """The ``runs`` table of one SQLite file."""

    def __init__(self, path: str, *, timeout: float = 30.0) -> None:
        self.path = path
        """The database file."""
        self._timeout = timeout
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(SCHEMA)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"cannot open the run index {self.path}: {exc}") from None
            self._local.db = db
        return db

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def add(self, row: RunRow) -> None:
        """Insert (or replace) ``row``."""
        values = (row.id, row.entry, row.start, row.duration, row.status.value, row.error,
                  json.dumps(list(row.models)), json.dumps(list(row.tools)),
                  row.input_tokens, row.output_tokens, row.tokens, row.cost,
                  json.dumps(list(row.tags)), json.dumps(dict(row.attrs)), row.size)
        marks = ", ".join("?" * len(COLUMNS))
        self._db().execute(f"INSERT OR REPLACE INTO runs ({', '.join(COLUMNS)}) "
                           f"VALUES ({marks})", values)

    def remove(self, ids: Iterable[str]) -> int:
        """Delete these rows; how many there were."""
        db = self._db()
        n = 0
        for run_id in ids:
            n += db.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount
        return n

    def totals(self) -> tuple[int, int]:
        """(runs, bytes)."""
        count, size = self._db().execute("SELECT COUNT(*), COALESCE(SUM(size), 0) "
                                         "FROM runs").fetchone()
        return int(count), int(size)

    def oldest(self, n: int) -> list[tuple[str, int]]:
        """The ``n`` oldest runs as (id, size)."""
        return [(str(i), int(s)) for i, s in self._db().execute(
            "SELECT id, size FROM runs ORDER BY start, id LIMIT ?", (n,))]

    def query(self, query: Query | None = None) -> list[RunRow]:
        """The rows ``query`` selects, newest first."""
        q = query or Query()
        where: list[str] = []
        args: list[Any] = []
        if q.failed:
            where.append("status != 'ok'")
        if q.since is not None:
            where.append("start >= ?")
            args.append(q.since)
        if q.entry is not None:
            where.append("instr(entry, ?) > 0")
            args.append(q.entry)
        if q.model is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(runs.models) "
                         "WHERE substr(value, 1, length(?)) = ?)")
            args += [q.model, q.model]
        if q.tool is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(runs.tools) WHERE value = ?)")
            args.append(q.tool)
        for tag in q.tags:
            where.append("EXISTS (SELECT 1 FROM json_each(runs.tags) WHERE value = ?)")
            args.append(tag)
        sql = f"SELECT {', '.join(COLUMNS)} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY start DESC, id DESC"
        if q.limit is not None:
            sql += " LIMIT ?"
            args.append(q.limit)
        return [_row(r) for r in self._db().execute(sql, args)]

    def prefixed(self, prefix: str, limit: int = 6) -> list[RunRow]:
        """Rows whose id starts with ``prefix``."""
        sql = (f"SELECT {', '.join(COLUMNS)} FROM runs WHERE substr(id, 1, length(?)) = ? "
               "ORDER BY id LIMIT ?")
        return [_row(r) for r in self._db().execute(sql, (prefix, prefix, limit))]


def _row(r: tuple[Any, ...]) -> RunRow:
    d = dict(zip(COLUMNS, r, strict=True))
    return RunRow(id=d["id"], entry=d["entry"], start=d["start"], duration=d["duration"],
                  status=RunStatus(d["status"]), error=d["error"],
                  models=tuple(json.loads(d["models"])), tools=tuple(json.loads(d["tools"])),
                  input_tokens=d["input_tokens"], output_tokens=d["output_tokens"],
                  cost=d["cost"], tags=tuple(json.loads(d["tags"])),
                  attrs=json.loads(d["attrs"]), size=d["size"])
