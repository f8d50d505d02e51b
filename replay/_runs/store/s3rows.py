"""Rows of an S3 run store as they travel: the local row cache, an index object's
JSON, and snapshots (every row in zstd-compressed JSON lines).

Everything read here comes from a bucket other processes write to, so it is
treated as hostile: size limits, no recursion blow-up, rows checked by
``RunRow.from_json``. May import: ``replay._cassette`` (errors),
``replay._runs.store`` (base, index) and zstandard.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import zstandard

from replay._cassette.errors import StoreError
from replay._runs.store.base import RunRow
from replay._runs.store.index import RunIndex

MAX_ROW_BYTES = 1 << 20
"""An index object larger than this is not a row (hostile or foreign): skipped."""


class RowCache(RunIndex):
    """The local SQLite index of rows read from the bucket, with the two bulk
    operations a listing needs."""

    def ids(self) -> set[str]:
        """Every cached run id (without decoding the rows)."""
        return {str(i) for (i,) in self._db().execute("SELECT id FROM runs")}

    def add_all(self, rows: Iterable[RunRow]) -> None:
        """Add many rows in one transaction."""
        db = self._db()
        db.execute("BEGIN")
        try:
            for row in rows:
                self.add(row)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def row_from(data: bytes) -> RunRow | None:
    """The row a JSON document holds; None when it is not one."""
    try:
        return RunRow.from_json(json.loads(data))
    except (ValueError, StoreError, AttributeError, RecursionError):
        return None


def snapshot_bytes(rows: Iterable[RunRow]) -> bytes:
    """A snapshot of ``rows``: one JSON row per line, zstd-compressed."""
    lines = b"".join(json.dumps(r.to_json(), separators=(",", ":")).encode() + b"\n"
                     for r in rows)
    return zstandard.ZstdCompressor(level=3).compress(lines)


def read_snapshot(body: Any, wanted: set[str]) -> list[RunRow]:
    """The rows of ``wanted`` runs in the snapshot ``body`` (a readable stream),
    read until all are found, the stream ends, or a size budget is spent (a
    decompression bomb stops there). Lines that are not rows are skipped;
    zstandard's errors propagate."""
    rows: list[RunRow] = []
    reader = zstandard.ZstdDecompressor().stream_reader(body)
    tail = b""
    budget = len(wanted) * (64 << 10) + (1 << 20)
    while len(rows) < len(wanted) and budget > 0:
        chunk = reader.read(1 << 20)
        if not chunk:
            break
        budget -= len(chunk)
        *lines, tail = (tail + chunk).split(b"\n")
        if len(tail) > MAX_ROW_BYTES:
            break
        for line in lines:
            row = row_from(line)
            if row is not None and row.id in wanted:
                rows.append(row)
    return rows
