"""Run stores: where recorded runs are kept, indexed and found again.

Holds the :class:`~replay._runs.store.base.Store` interface and its value
types (``base``: ``RunRow``, ``RunStatus``, ``Query``, ``Caps``, ``Spool``,
run ids), the SQLite index (``index``), the local-folder store (``local``),
and :func:`open_store`, which picks the backend from a url.

The interface, in short (see ``Store``'s docstring)::

    path = store.new_run(run_id)      # record there (PATH.partial until closed)
    store.put(path, row)              # keep it: move/upload, index, evict past caps
    store.discard(path)               # drop it: one unlink
    store.recover(summarize)          # crashed writers' leftover .partial -> runs
    store.query(Query(failed=True))   # rows, newest first
    store.get("last")                 # one row: last, last~N, an id, a unique prefix
    store.fetch(run_id)               # a local path holding its cassette
    store.pull(ref, dest)             # a copy of it at dest
    store.delete(ids); store.evict()

A backend for a url scheme is a module named in :data:`BACKENDS` whose
``open(url, caps)`` returns a ``Store`` (``s3://`` -> ``replay._runs.store.s3``).

May import: ``replay._cassette`` (errors) and the standard library.
"""

from __future__ import annotations

import importlib
import os

from replay._cassette.errors import StoreError
from replay._runs.store.base import (
    Caps,
    Query,
    RunRow,
    RunStatus,
    Spool,
    Store,
    is_run_id,
    is_run_ref,
    new_run_id,
    run_id_of,
)
from replay._runs.store.local import LocalStore

DEFAULT_STORE = os.path.join(".replay", "runs")
"""The store used when neither ``--store`` nor ``REPLAY_STORE`` names one."""

ENV = "REPLAY_STORE"
"""The environment variable naming the store."""

BACKENDS: dict[str, str] = {"s3": "replay._runs.store.s3"}
"""url scheme -> module whose ``open(url: str, caps: Caps) -> Store`` opens it."""


def store_url(given: str | None = None) -> str:
    """The store to use: ``given``, else ``$REPLAY_STORE``, else ``.replay/runs``."""
    return given or os.environ.get(ENV) or DEFAULT_STORE


def open_store(url: str | None = None, *, caps: Caps | None = None,
               create: bool = True) -> Store:
    """Open the store ``url`` names (see :func:`store_url`); StoreError when it cannot.

    ``create=False``: a local store that does not exist is an error (readers).
    """
    url = store_url(url)
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if not scheme or scheme == "file":
        return LocalStore(url.removeprefix("file://"), caps=caps, create=create)
    module_name = BACKENDS.get(scheme)
    if module_name is None:
        raise StoreError(f"no run store backend for {scheme}:// urls "
                         f"(known: a folder, {', '.join(s + '://' for s in BACKENDS)})")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StoreError(f"{scheme}:// stores need an extra: pip install "
                         f"'agent-replay[{scheme}]' ({exc})") from None
    store: Store = module.open(url, caps or Caps())
    return store


def resolve(arg: str, store: str | None = None) -> str:
    """The cassette path ``arg`` means: itself when such a file exists or it does not
    look like a run reference; else the stored run it names (``last``, an id, a
    prefix) in ``store`` (:func:`store_url`), fetched to a local path.

    Raises StoreError when ``arg`` looks like a run reference that the store
    does not hold.
    """
    if os.path.exists(arg) or not is_run_ref(arg):
        return arg
    st = open_store(store, create=False)
    try:
        return st.fetch(st.get(arg).id)
    finally:
        st.close()


__all__ = [
    "BACKENDS",
    "DEFAULT_STORE",
    "ENV",
    "Caps",
    "LocalStore",
    "Query",
    "RunRow",
    "RunStatus",
    "Spool",
    "Store",
    "StoreError",
    "is_run_id",
    "is_run_ref",
    "new_run_id",
    "open_store",
    "resolve",
    "run_id_of",
    "store_url",
]
