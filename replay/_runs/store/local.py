"""The local run store: a folder of cassettes with a SQLite index.

    ROOT/index.sqlite          one row per run (``index.RunIndex``)
    ROOT/ID.replay             the runs' cassettes
    ROOT/.spool/HOST.PID.R/    runs being recorded, one folder per process

A run is recorded in its process's spool folder (same file system as ROOT),
then renamed into ROOT and indexed; a run retention drops is one unlink.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterable

from replay._cassette.errors import StoreError
from replay._cassette.journalmap import fsync_dir
from replay._runs.store.base import (
    EXTENSION,
    Caps,
    Query,
    RunRow,
    Spool,
    Store,
    is_run_id,
    one_run,
)
from replay._runs.store.index import RunIndex


class LocalStore(Store):
    """Runs in a folder (default ``.replay/runs``), indexed in ``index.sqlite``."""

    def __init__(self, root: str, *, caps: Caps | None = None, create: bool = True) -> None:
        self.url = root
        self.caps = caps or Caps()
        self.root = os.path.abspath(root)
        """The folder."""
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise StoreError(f"the run store {root} is not a folder")
        if not os.path.isdir(self.root):
            if not create:
                raise StoreError(f"no run store at {root} (nothing recorded there yet)")
            try:
                os.makedirs(self.root, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the run store {root}: "
                                 f"{exc.strerror or exc}") from None
        self.index = RunIndex(os.path.join(self.root, "index.sqlite"))
        """The SQLite index."""
        self.spool = Spool(os.path.join(self.root, ".spool"))
        """Where this process records runs."""

    def _file(self, run_id: str) -> str:
        if not is_run_id(run_id):
            raise StoreError(f"{run_id!r} is not a run id")
        return os.path.join(self.root, run_id + EXTENSION)

    # -- writing -------------------------------------------------------------------
    def new_run(self, run_id: str) -> str:
        return self.spool.path_for(run_id)

    def put(self, path: str, row: RunRow) -> None:
        dest = self._file(row.id)
        size = os.path.getsize(path)
        os.replace(path, dest)
        fsync_dir(dest)  # the file is in the store's folder before the index lists it
        self.index.add(dataclasses.replace(row, size=size))
        self.evict()

    def leftovers(self) -> list[str]:
        return self.spool.leftovers()

    # -- reading -------------------------------------------------------------------
    def query(self, query: Query | None = None) -> list[RunRow]:
        return self.index.query(query)

    def get(self, ref: str) -> RunRow:
        if ref.startswith("last"):
            return super().get(ref)
        return one_run(ref, self.index.prefixed(ref), self.url)

    def fetch(self, run_id: str) -> str:
        path = self._file(run_id)
        if not os.path.isfile(path):
            raise StoreError(f"run {run_id} is indexed in {self.url} but its cassette is gone "
                             "(evicted or deleted)")
        return path

    # -- removing ------------------------------------------------------------------
    def delete(self, run_ids: Iterable[str]) -> int:
        ids = list(run_ids)
        for run_id in ids:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._file(run_id))
        return self.index.remove(ids)

    def evict(self) -> list[str]:
        runs, size = self.index.totals()
        if not self.caps.exceeded(runs, size):
            return []
        victims = self.caps.victims(runs, size, self.index.oldest(runs))
        self.delete(victims)
        return victims

    def close(self) -> None:
        self.index.close()
