"""Run stores in S3-compatible object storage: ``s3://bucket/prefix`` (boto3).

Layout under the prefix, shared by every process on every host::

    PREFIX/runs/ID.replay    a run's cassette
    PREFIX/index/ID.json     its RunRow (``RunRow.to_json``), written after the cassette
    PREFIX/snapshots/T-R.jsonl.zst   every row at time T, for readers with an empty cache

Every run is two objects of its own, so writers never update a shared object
and cannot collide: both are created with ``If-None-Match: *`` and, in the
unlikely case that another writer took the same id first, the run is stored
under a fresh id instead. A run is listed once its index object exists, so a
listed run always has its cassette. Readers list ``PREFIX/index/`` (paginated
ListObjectsV2) and read only the index objects they have not seen: rows are
cached in a local SQLite index (``s3rows.RowCache``) and fetched cassettes in
a local folder (``$REPLAY_CACHE``, default ``~/.cache/agent-replay/s3/SLUG``).
A reader that had to read many index objects one by one leaves a snapshot of
all rows behind, so the next new reader makes one GET instead of thousands
(rows never change, and the listing still decides which runs exist).

Runs are recorded in a local spool first (``$REPLAY_SPOOL``, default
``.replay/spool/SLUG``; ``base.Spool``: one locked folder per process), so a
process killed mid-run leaves its ``.partial`` there for :meth:`recover` to
upload as a crashed run on the next start.

Credentials, region and endpoint come from boto3's standard chain
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_REGION``, ``AWS_PROFILE``, ``~/.aws/config`` and ``credentials``, instance
roles); nothing of them is written anywhere by this module.

Its S3 calls run with the capture layer's ``BUSY`` set, so a put or a listing
made while a run is being recorded never becomes an event of that run.

May import: ``replay._cassette`` (errors), ``replay._capture.session`` (BUSY),
``replay._runs.store`` and, lazily, boto3 (the ``s3`` extra).
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from replay._capture.session import BUSY
from replay._cassette.errors import StoreError
from replay._runs.store.base import (
    EXTENSION,
    Caps,
    Query,
    RunRow,
    Spool,
    Store,
    is_run_id,
    new_run_id,
    one_run,
)
from replay._runs.store.s3rows import (
    MAX_ROW_BYTES,
    RowCache,
    read_snapshot,
    row_from,
    snapshot_bytes,
)

INSTALL = "pip install 'agent-replay[s3]'"
READERS = 16
"""Index objects read in parallel when a listing finds new runs."""
ID_RETRIES = 5
LIST_SPLIT = 1000
"""Keys per range when a listing is split into ranges listed in parallel."""
SNAPSHOT_AFTER = 100
"""A sync that reads more index objects than this one by one writes a snapshot:
every row in one compressed object (``PREFIX/snapshots/``), which the next
reader with an empty cache reads instead of a GET per run."""
SNAPSHOT_SUFFIX = ".jsonl.zst"
KEEP_SNAPSHOTS = 2

_T = TypeVar("_T")
_URL = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?$")


def parse_url(url: str) -> tuple[str, str]:
    """(bucket, prefix without slashes at either end) of ``s3://bucket/prefix``."""
    m = _URL.match(url)
    if not m:
        raise StoreError(f"{url!r} is not an s3://bucket/prefix url (bucket names are 3-63 "
                         "lower-case letters, digits, dots and hyphens)")
    return m.group(1), (m.group(2) or "").strip("/")


def _boto3() -> Any:
    try:
        import boto3  # type: ignore[import-untyped]
    except ImportError:
        raise StoreError(f"s3:// run stores need boto3: {INSTALL}") from None
    return boto3


class S3Store(Store):
    """Runs in an S3 bucket under a prefix; see the module docstring for the layout."""

    def __init__(self, url: str, *, caps: Caps | None = None, cache_dir: str | None = None,
                 spool_dir: str | None = None, evict_every: float = 60.0) -> None:
        self.url = url
        self.caps = caps or Caps()
        self.bucket, self.prefix = parse_url(url)
        boto3 = _boto3()
        self._session = boto3.session.Session()
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(
            "AWS_ENDPOINT_URL") or "aws"
        slug = self.bucket + "-" + hashlib.sha256(
            f"{endpoint}\0{self.bucket}\0{self.prefix}".encode()).hexdigest()[:12]
        self.cache_dir = os.path.abspath(cache_dir or os.environ.get("REPLAY_CACHE") or
                                         os.path.join(_user_cache(), "agent-replay", "s3",
                                                      slug))
        """Local folder of the row cache (``index.sqlite``) and fetched cassettes."""
        spool_root = os.path.abspath(spool_dir or os.environ.get("REPLAY_SPOOL") or
                                     os.path.join(".replay", "spool", slug))
        try:
            os.makedirs(os.path.join(self.cache_dir, "runs"), exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the cache of {url} at {self.cache_dir}: "
                             f"{exc.strerror or exc}") from None
        self.cache = RowCache(os.path.join(self.cache_dir, "index.sqlite"))
        """Rows already read from the bucket."""
        self.spool = Spool(spool_root)
        """Where this process records runs before uploading them."""
        self.evict_every = evict_every
        """Seconds between the evictions :meth:`put` starts (each lists the index)."""
        self._conditional = True
        self._client: Any = None
        self._client_pid = -1
        self._lock = threading.Lock()
        self._last_evict = 0.0

    # -- keys and the client ---------------------------------------------------------
    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}/{kind}/{name}" if self.prefix else f"{kind}/{name}"

    def _run_key(self, run_id: str) -> str:
        return self._key("runs", run_id + EXTENSION)

    def _row_key(self, run_id: str) -> str:
        return self._key("index", run_id + ".json")

    @property
    def client(self) -> Any:
        """The boto3 S3 client (one per process: clients do not survive a fork)."""
        with self._lock:
            if self._client is None or self._client_pid != os.getpid():
                from botocore.config import Config  # type: ignore[import-untyped]

                config = Config(retries={"mode": "standard", "max_attempts": 5},
                                max_pool_connections=READERS * 2,
                                request_checksum_calculation="when_required",
                                response_checksum_validation="when_required")
                self._client = self._call("connect", lambda: self._session.client(
                    "s3", config=config))
                self._client_pid = os.getpid()
            return self._client

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        """``fn()``, with boto3's errors turned into StoreError (never a raw traceback)."""
        from botocore.exceptions import (  # type: ignore[import-untyped]
            BotoCoreError,
            ClientError,
        )

        token = BUSY.set(True)  # S3 traffic is never an event of a run being recorded
        try:
            return fn()
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = err.get("Code", "?")
            hint = ""
            if code == "NoSuchBucket":
                hint = f" (create it first: aws s3 mb s3://{self.bucket})"
            elif code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
                hint = " (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE)"
            raise StoreError(f"{self.url}: {what} failed: {code}: "
                             f"{err.get('Message', exc)}{hint}") from None
        except BotoCoreError as exc:
            raise StoreError(f"{self.url}: {what} failed: {exc}") from None
        finally:
            BUSY.reset(token)

    @staticmethod
    def _code(exc: BaseException) -> str:
        response = getattr(exc, "response", None)
        return str(response.get("Error", {}).get("Code", "")) if isinstance(response,
                                                                             dict) else ""

    def _create(self, key: str, body: Any, content_type: str) -> bool:
        """Put ``key`` only if it does not exist; False when it does."""
        from botocore.exceptions import ClientError

        extra = {"IfNoneMatch": "*"} if self._conditional else {}
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body,
                                   ContentType=content_type, **extra)
        except ClientError as exc:
            code = self._code(exc)
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            if code in ("NotImplemented", "501") and self._conditional:
                # a server without conditional writes: ids (a second and 32 random
                # bits) are then the only guard against two writers' collisions
                self._conditional = False
                if hasattr(body, "seek"):
                    body.seek(0)
                return self._create(key, body, content_type)
            raise
        return True

    # -- writing -------------------------------------------------------------------
    def new_run(self, run_id: str) -> str:
        return self.spool.path_for(run_id)

    def put(self, path: str, row: RunRow) -> None:
        size = os.path.getsize(path)
        row = dataclasses.replace(row, size=size)
        for _ in range(ID_RETRIES):
            with builtins.open(path, "rb") as f:
                created = self._call(f"upload of run {row.id}", functools.partial(
                    self._create, self._run_key(row.id), f, "application/octet-stream"))
            if created:
                break
            row = dataclasses.replace(row, id=new_run_id(row.start))  # id taken elsewhere
        else:
            raise StoreError(f"{self.url}: no free run id after {ID_RETRIES} tries")
        body = json.dumps(row.to_json(), separators=(",", ":")).encode()
        self._call(f"index of run {row.id}", lambda: self._create(
            self._row_key(row.id), body, "application/json"))
        self.cache.add(row)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        if self.caps.max_runs is not None or self.caps.max_bytes is not None:
            now = time.monotonic()
            if now - self._last_evict >= self.evict_every:
                self._last_evict = now
                self.evict()

    def leftovers(self) -> list[str]:
        return self.spool.leftovers()

    # -- reading ---------------------------------------------------------------------
    def sync(self) -> int:
        """Bring the row cache up to the bucket: read new index objects, forget
        removed ones. How many rows the bucket lists."""
        cached = self.cache.ids()
        listed = self._list("index", ".json", cached)
        gone = cached - listed.keys()
        if gone:
            self.cache.remove(gone)
        missing = listed.keys() - cached
        if len(missing) > SNAPSHOT_AFTER:  # a new reader: start from a snapshot
            known = self._read_snapshot(missing)
            self.cache.add_all(known)
            missing.difference_update(r.id for r in known)
        if missing:
            with ThreadPoolExecutor(READERS) as pool:
                rows = pool.map(self._read_row, [listed[i] for i in sorted(missing)])
                self.cache.add_all(r for r in rows if r is not None)
            if len(missing) > SNAPSHOT_AFTER:
                self._write_snapshot(listed.keys())
        return len(listed)

    def _list(self, kind: str, suffix: str, known: Iterable[str] = ()) -> dict[str, str]:
        """Run id (or snapshot name) -> key of every ``PREFIX/KIND/*SUFFIX`` object.

        ``known``: ids seen before; their spread splits the key space into ranges
        of about :data:`LIST_SPLIT` keys that are listed in parallel (a listing is
        a chain of pages otherwise, each waiting for the last key of the one before).
        """
        ids = sorted(known)
        bounds = [self._key(kind, i + suffix) for i in ids[LIST_SPLIT::LIST_SPLIT]]
        ranges = list(zip([None, *bounds], [*bounds, None], strict=True))

        def list_range(lo: str | None, hi: str | None) -> dict[str, str]:
            found: dict[str, str] = {}
            token = BUSY.set(True)  # a pool thread: not an event of a run being recorded
            try:
                args = {"Bucket": self.bucket, "Prefix": self._key(kind, "")}
                if lo is not None:
                    args["StartAfter"] = lo  # keys after lo, up to and with hi
                for page in self.client.get_paginator("list_objects_v2").paginate(**args):
                    for obj in page.get("Contents", ()):
                        key = str(obj["Key"])
                        if hi is not None and key > hi:
                            return found
                        name = key.rsplit("/", 1)[-1]
                        stem = name.removesuffix(suffix)
                        if name.endswith(suffix) and (kind != "index" or is_run_id(stem)):
                            found[stem] = key
            finally:
                BUSY.reset(token)
            return found

        def list_all() -> dict[str, str]:
            if len(ranges) == 1:
                return list_range(None, None)
            found: dict[str, str] = {}
            with ThreadPoolExecutor(min(READERS, len(ranges))) as pool:
                for part in pool.map(lambda r: list_range(*r), ranges):
                    found.update(part)
            return found

        return self._call(f"listing {kind}", list_all)

    def _read_snapshot(self, wanted: set[str]) -> list[RunRow]:
        """Rows of ``wanted`` runs from the newest snapshot (none when there is none,
        or it cannot be read: the index objects are the truth, snapshots a shortcut)."""
        snaps = self._list("snapshots", SNAPSHOT_SUFFIX)
        if not snaps:
            return []
        token = BUSY.set(True)
        try:
            body = self.client.get_object(Bucket=self.bucket,
                                          Key=snaps[max(snaps)])["Body"]
            return read_snapshot(body, wanted)
        except Exception:  # gone meanwhile, damaged, foreign: read the index objects
            return []
        finally:
            BUSY.reset(token)

    def _write_snapshot(self, listed: Iterable[str]) -> None:
        """Put every listed row in one compressed object for the next new reader, and
        keep the newest few snapshots. Best effort (a reader may not write)."""
        keep = set(listed)
        data = snapshot_bytes(r for r in self.cache.query() if r.id in keep)
        name = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)
        try:
            self._call("snapshot", functools.partial(
                self.client.put_object, Bucket=self.bucket,
                Key=self._key("snapshots", name + SNAPSHOT_SUFFIX),
                Body=data))
            old = sorted(self._list("snapshots", SNAPSHOT_SUFFIX).items())[:-KEEP_SNAPSHOTS]
            if old:
                self._call("snapshot clean-up", functools.partial(
                    self.client.delete_objects, Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for _, k in old], "Quiet": True}))
        except StoreError:
            pass

    def _read_row(self, key: str) -> RunRow | None:
        """The row stored at ``key``; None when it vanished meanwhile or is not a row."""
        from botocore.exceptions import ClientError

        token = BUSY.set(True)  # a pool thread: not an event of a run being recorded
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=key)
            data = obj["Body"].read(MAX_ROW_BYTES + 1)
        except ClientError as exc:
            if self._code(exc) in ("NoSuchKey", "404"):
                return None  # evicted by another process since the listing
            raise
        finally:
            BUSY.reset(token)
        if len(data) > MAX_ROW_BYTES:
            return None
        row = row_from(data)
        return row if row is not None and key.endswith("/" + row.id + ".json") else None

    def query(self, query: Query | None = None) -> list[RunRow]:
        self.sync()
        return self.cache.query(query)

    def get(self, ref: str) -> RunRow:
        if ref.startswith("last"):
            return super().get(ref)
        self.sync()
        return one_run(ref, self.cache.prefixed(ref), self.url)

    def fetch(self, run_id: str) -> str:
        if not is_run_id(run_id):
            raise StoreError(f"{run_id!r} is not a run id")
        path = os.path.join(self.cache_dir, "runs", run_id + EXTENSION)
        if os.path.isfile(path):
            return path  # a stored cassette never changes
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".fetch-")
        os.close(fd)
        try:
            self._call(f"download of run {run_id}", lambda: self._download(run_id, tmp))
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return path

    def _download(self, run_id: str, dest: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.download_file(self.bucket, self._run_key(run_id), dest)
        except ClientError as exc:
            if self._code(exc) in ("NoSuchKey", "404"):
                raise StoreError(f"run {run_id} is not in {self.url} (evicted or deleted)"
                                 ) from None
            raise

    # -- removing --------------------------------------------------------------------
    def delete(self, run_ids: Iterable[str]) -> int:
        ids = [i for i in run_ids if is_run_id(i)]
        if not ids:
            return 0
        self.sync()
        known = self.cache.ids()
        # the index object first: a run is never listed without its cassette
        for kind in (self._row_key, self._run_key):
            keys = [kind(i) for i in ids]
            for start in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[start:start + 1000]]
                self._call("delete", functools.partial(
                    self.client.delete_objects, Bucket=self.bucket,
                    Delete={"Objects": batch, "Quiet": True}))
        self.cache.remove(ids)
        for run_id in ids:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.cache_dir, "runs", run_id + EXTENSION))
        return len(known.intersection(ids))

    def evict(self) -> list[str]:
        if self.caps.max_runs is None and self.caps.max_bytes is None:
            return []
        self.sync()
        runs, size = self.cache.totals()
        if not self.caps.exceeded(runs, size):
            return []
        victims = self.caps.victims(runs, size, self.cache.oldest(runs))
        self.delete(victims)
        return victims

    def close(self) -> None:
        self.cache.close()


def _user_cache() -> str:
    return os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")


def open(url: str, caps: Caps) -> Store:
    """The store ``s3://bucket/prefix`` names (the ``BACKENDS`` hook)."""
    return S3Store(url, caps=caps)
