"""What a run store is: a row per run, a query, and the :class:`Store` interface.

A *run* is a closed cassette plus its :class:`RunRow` (entry point, status,
error, models, tools, tokens, cost, tags). A store keeps runs and answers
queries over their rows; every backend (the local folder, object storage)
implements :class:`Store`, and records new runs through a :class:`Spool`.
"""

from __future__ import annotations

import abc
import contextlib
import datetime
import enum
import fcntl
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from replay._cassette.errors import StoreError
from replay._cassette.journalmap import cut_zero_tail

EXTENSION = ".replay"


class RunStatus(enum.Enum):
    """How a run ended."""

    OK = "ok"
    """It returned (an HTTP status below 500) and nothing flagged it."""
    FAILED = "failed"
    """It raised, answered HTTP 5xx, or ``replay.flag()`` was called during it."""
    CRASHED = "crashed"
    """Its process died mid-run; the cassette holds the events completed before."""


@dataclass(frozen=True)
class RunRow:
    """The index row of one stored run: what ``replay ls`` shows and filters on."""

    id: str
    """The run id (``20261203-114500-1a2b3c4d``: UTC start, then random hex)."""
    entry: str
    """What ran: ``module:qualname`` of a ``@replay.recorded`` function, or
    ``METHOD /route`` of a request recorded by the ASGI middleware."""
    start: float
    """Start, in seconds since the epoch (UTC)."""
    duration: float
    """Seconds from start to end."""
    status: RunStatus
    """How it ended."""
    error: str | None = None
    """The exception (``Type: message``, redacted), ``HTTP 503`` or the flag's reason."""
    models: tuple[str, ...] = ()
    """Model ids asked for, in first-use order."""
    tools: tuple[str, ...] = ()
    """Tools called (``tool:NAME`` channels without the prefix)."""
    input_tokens: int = 0
    """Prompt tokens over every model call."""
    output_tokens: int = 0
    """Generated tokens over every model call."""
    cost: float | None = None
    """Estimated USD (genai-prices); None when a model's price is unknown."""
    tags: tuple[str, ...] = ()
    """Labels given to the decorator or middleware."""
    attrs: Mapping[str, str] = field(default_factory=dict)
    """Other facts: ``route``, ``method``, ``http_status``, ``request_id``, ``flag``,
    ``host``, ``pid``."""
    size: int = 0
    """Bytes of the cassette."""

    @property
    def tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    @property
    def failed(self) -> bool:
        """Not ``ok``: failed or crashed."""
        return self.status is not RunStatus.OK

    def to_json(self) -> dict[str, Any]:
        """The row as a JSON object (``replay ls --json``, object metadata)."""
        return {"id": self.id, "entry": self.entry, "start": self.start,
                "start_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.start)),
                "duration": self.duration, "status": self.status.value, "error": self.error,
                "models": list(self.models), "tools": list(self.tools),
                "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "tokens": self.tokens, "cost": self.cost, "tags": list(self.tags),
                "attrs": dict(self.attrs), "size": self.size}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RunRow:
        """The row a :meth:`to_json` document describes; StoreError when it is not one."""
        try:
            cost = doc.get("cost")
            return cls(
                id=str(doc["id"]), entry=str(doc["entry"]), start=float(doc["start"]),
                duration=float(doc["duration"]), status=RunStatus(doc["status"]),
                error=None if doc.get("error") is None else str(doc["error"]),
                models=tuple(str(m) for m in doc.get("models") or ()),
                tools=tuple(str(t) for t in doc.get("tools") or ()),
                input_tokens=int(doc.get("input_tokens") or 0),
                output_tokens=int(doc.get("output_tokens") or 0),
                cost=None if cost is None else float(cost),
                tags=tuple(str(t) for t in doc.get("tags") or ()),
                attrs={str(k): str(v) for k, v in dict(doc.get("attrs") or {}).items()},
                size=int(doc.get("size") or 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"not a run row: {exc}") from None


@dataclass(frozen=True)
class Query:
    """Which runs to list (every field narrows; the default is every run).

    :meth:`matches` is the meaning; backends may evaluate it their own way
    (the local index in SQL) but must agree with it.
    """

    failed: bool = False
    """Only runs that failed or crashed."""
    since: float | None = None
    """Only runs started at or after this time (seconds since the epoch)."""
    entry: str | None = None
    """Only runs whose entry contains this text."""
    model: str | None = None
    """Only runs that asked for a model id starting with this."""
    tool: str | None = None
    """Only runs that called this tool."""
    tags: tuple[str, ...] = ()
    """Only runs that carry every one of these tags."""
    limit: int | None = None
    """At most this many, newest first."""

    def matches(self, row: RunRow) -> bool:
        """True when ``row`` passes every filter (``limit`` aside)."""
        return ((not self.failed or row.failed)
                and (self.since is None or row.start >= self.since)
                and (self.entry is None or self.entry in row.entry)
                and (self.model is None or any(m.startswith(self.model) for m in row.models))
                and (self.tool is None or self.tool in row.tools)
                and all(t in row.tags for t in self.tags))

    def apply(self, rows: Iterable[RunRow]) -> list[RunRow]:
        """The rows that match, newest first, cut to ``limit``."""
        out = sorted((r for r in rows if self.matches(r)), key=lambda r: (r.start, r.id),
                     reverse=True)
        return out if self.limit is None else out[:self.limit]


@dataclass(frozen=True)
class Caps:
    """Limits a store keeps to by evicting its oldest runs after each ``put``."""

    max_runs: int | None = None
    """At most this many runs."""
    max_bytes: int | None = None
    """At most this many bytes of cassettes."""

    def exceeded(self, runs: int, size: int) -> bool:
        """True when ``runs`` runs of ``size`` bytes are over a cap."""
        return ((self.max_runs is not None and runs > self.max_runs)
                or (self.max_bytes is not None and size > self.max_bytes))

    def victims(self, runs: int, size: int,
                oldest: Iterable[tuple[str, int]]) -> list[str]:
        """The ids to evict, oldest first, until ``runs`` runs of ``size`` bytes fit:
        ``oldest`` yields (id, bytes) from the oldest run on."""
        out: list[str] = []
        for run_id, run_size in oldest:
            if not self.exceeded(runs, size):
                break
            out.append(run_id)
            runs, size = runs - 1, size - run_size
        return out


_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{8}$")
_LAST = re.compile(r"^last(?:~(\d+))?$")


def new_run_id(start: float | None = None) -> str:
    """A fresh run id: the UTC start (so ids sort by time) and 32 random bits."""
    t = time.time() if start is None else start
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(t)) + "-" + secrets.token_hex(4)


def is_run_id(text: str) -> bool:
    """True for a whole run id as :func:`new_run_id` makes them."""
    return bool(_ID.match(text))


def is_run_ref(text: str) -> bool:
    """True when ``text`` may name a stored run: ``last``, ``last~N``, an id or the
    start of one (at least 8 characters: ``20261203-11``)."""
    return bool(_LAST.match(text)) or (
        len(text) >= 8 and bool(re.match(r"^\d{8}(?:-\d{0,6}(?:-[0-9a-f]{0,8})?)?$", text)))


class Spool:
    """Where this process records runs before they enter a store.

    Each process gets its own folder ``ROOT/HOST.PID.RANDOM`` holding an
    exclusive ``flock`` for the life of the process; runs are written there as
    ``ID.replay.partial`` by the cassette writer. A folder whose lock can be
    taken belongs to a process that has ended: its ``.partial`` files are a
    crashed writer's leftovers (:meth:`leftovers`), and empty ones are removed
    (as are empty ``.partial`` files: a service's free journal slots).
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        """The folder of every process's spool."""
        self._dir: str | None = None
        self._lock: IO[bytes] | None = None
        self._pid = -1
        self._making = threading.Lock()

    @property
    def folder(self) -> str:
        """This process's spool folder (made, and locked, on first use).

        It is made under a hidden name, locked, then renamed into place, so
        another process's :meth:`leftovers` never sees it unlocked (and never
        removes it as an ended process's empty spool); threads of this process
        that ask at once get the same folder."""
        with self._making:
            if self._dir is None or self._lock is None or os.getpid() != self._pid:
                os.makedirs(self.root, exist_ok=True)
                name = f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(3)}"
                making = tempfile.mkdtemp(prefix=".making-", dir=self.root)
                lock = open(os.path.join(making, ".lock"), "wb")  # noqa: SIM115 - held till exit
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                folder = os.path.join(self.root, name)
                os.rename(making, folder)
                self._dir, self._lock, self._pid = folder, lock, os.getpid()
            return self._dir

    def path_for(self, run_id: str) -> str:
        """Where to record ``run_id`` (the writer appends ``.partial`` until close)."""
        return os.path.join(self.folder, run_id + EXTENSION)

    def leftovers(self) -> list[str]:
        """``.partial`` files of spools whose process has ended (oldest first)."""
        found: list[str] = []
        if not os.path.isdir(self.root):
            return found
        mine = self._dir
        for name in sorted(os.listdir(self.root)):
            folder = os.path.join(self.root, name)
            if folder == mine or name.startswith(".") or not os.path.isdir(folder):
                continue  # ours, or one being made
            with _taken(os.path.join(folder, ".lock")) as free:
                if not free:
                    continue  # a live process records there
                files = [os.path.join(folder, f) for f in sorted(os.listdir(folder))
                         if f.endswith(EXTENSION + ".partial")]
                for empty in [f for f in files if os.path.getsize(f) == 0]:
                    os.unlink(empty)  # a service's free journal slot: no run in it
                    files.remove(empty)
                found += files
                if not files:
                    shutil.rmtree(folder, ignore_errors=True)
        return found


@contextlib.contextmanager
def _taken(path: str) -> Any:
    """Yield True when the lock at ``path`` is free (and hold it meanwhile)."""
    try:
        f = open(path, "ab")  # noqa: SIM115
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        f.close()


def one_run(ref: str, hits: list[RunRow], url: str) -> RunRow:
    """The run ``ref`` names among ``hits`` (the rows whose id starts with it): the
    exact id, else the only one; none or several is a :class:`StoreError`."""
    exact = [r for r in hits if r.id == ref]
    if exact:
        return exact[0]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise StoreError(f"no run {ref} in {url}")
    raise StoreError(f"{ref} names several runs in {url} "
                     f"({', '.join(r.id for r in hits[:5])}...); give more of the id")


def run_id_of(path: str) -> str:
    """The run id a spooled or stored cassette's file name carries."""
    name = os.path.basename(path)
    for suffix in (".partial", EXTENSION):
        name = name.removesuffix(suffix)
    return name


class Store(abc.ABC):
    """A place that keeps runs. Implementations: ``LocalStore`` (a folder with a
    SQLite index) and the object-storage store for ``s3://`` urls.

    Life of a run: the recorder asks :meth:`new_run` for a local path and
    records there (through ``PATH.partial``); once the run is closed it calls
    :meth:`put` with the row (kept) or :meth:`discard` (dropped by retention:
    one file delete). :meth:`recover` turns leftovers of crashed writers into
    ``crashed`` runs. Readers :meth:`query` rows, :meth:`get` one by reference
    (``last``, ``last~N``, an id or a unique prefix) and :meth:`fetch` its
    cassette to a local path.
    """

    url: str
    """How the store was named (``.replay/runs``, ``s3://bucket/prefix``)."""
    caps: Caps
    """The caps ``put`` keeps to."""

    # -- writing ---------------------------------------------------------------
    @abc.abstractmethod
    def new_run(self, run_id: str) -> str:
        """A local path to record ``run_id`` into (its writer adds ``.partial``)."""

    @abc.abstractmethod
    def put(self, path: str, row: RunRow) -> None:
        """Take the closed cassette at ``path`` (from :meth:`new_run`, or a leftover
        ``.partial``) into the store with its row, then evict past the caps.
        The file at ``path`` is moved or uploaded and removed."""

    def discard(self, path: str) -> None:
        """Drop a run retention does not keep: delete its file(s), nothing more."""
        for p in (path, path + ".partial"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)

    @abc.abstractmethod
    def leftovers(self) -> list[str]:
        """Local ``.partial`` files that crashed writers of this store left."""

    def recover(self, summarize: Callable[[str], RunRow]) -> list[RunRow]:
        """Put every leftover in the store as the row ``summarize(path)`` gives
        (a ``crashed`` run); a leftover that cannot be summarized is left alone."""
        rows: list[RunRow] = []
        for path in self.leftovers():
            try:
                cut_zero_tail(path)  # a mapped journal's preallocated zeros
                row = summarize(path)
            except Exception:  # an unreadable leftover stays for a person to look at
                continue
            self.put(path, row)
            rows.append(row)
        return rows

    # -- reading ---------------------------------------------------------------
    @abc.abstractmethod
    def query(self, query: Query | None = None) -> list[RunRow]:
        """The rows ``query`` selects, newest first."""

    def get(self, ref: str) -> RunRow:
        """The run ``ref`` names: ``last`` (newest), ``last~N`` (N before it), a run
        id, or the start of exactly one id. StoreError when none or several."""
        m = _LAST.match(ref)
        if m:
            back = int(m.group(1) or 0)
            rows = self.query(Query(limit=back + 1))
            if len(rows) <= back:
                raise StoreError(f"no run {ref} in {self.url}: it holds {len(rows)} run(s)")
            return rows[back]
        hits = [r for r in self.query() if r.id.startswith(ref)]
        if not hits:
            raise StoreError(f"no run {ref} in {self.url}")
        if len(hits) > 1 and not any(r.id == ref for r in hits):
            ids = ", ".join(r.id for r in hits[:5])
            raise StoreError(f"{ref} names {len(hits)} runs in {self.url} ({ids}...); "
                             "give more of the id")
        return next((r for r in hits if r.id == ref), hits[0])

    @abc.abstractmethod
    def fetch(self, run_id: str) -> str:
        """A local path holding the run's cassette (the stored file, or a cached copy)."""

    def pull(self, ref: str, dest: str) -> str:
        """Copy the run ``ref`` names to ``dest`` (a file, or a folder to put
        ``ID.replay`` in), atomically; the path written."""
        row = self.get(ref)
        src = self.fetch(row.id)
        if os.path.isdir(dest):
            dest = os.path.join(dest, row.id + EXTENSION)
        folder = os.path.dirname(os.path.abspath(dest))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".pull-")
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return dest

    # -- removing --------------------------------------------------------------
    @abc.abstractmethod
    def delete(self, run_ids: Iterable[str]) -> int:
        """Remove these runs (cassette and row); how many were there."""

    @abc.abstractmethod
    def evict(self) -> list[str]:
        """Delete the oldest runs until the store is within its caps; their ids."""

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        """Release connections (the store stays usable: they reopen on demand)."""


_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: float | None = None) -> float:
    """A span back from now (``30m``, ``2h``, ``7d``) or a UTC ISO date/time, as
    seconds since the epoch; ValueError otherwise."""
    m = _SPAN.match(text.strip())
    if m:
        return (time.time() if now is None else now) - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        when = datetime.datetime.fromisoformat(text.strip().removesuffix("Z"))
    except ValueError:
        raise ValueError(f"since takes a span (30m, 2h, 7d) or a date/time "
                         f"(2026-12-03T10:00), not {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def parse_filter(words: Iterable[str]) -> Query:
    """A :class:`Query` from ``failed``, ``entry=TEXT``, ``model=PREFIX``, ``tool=NAME``,
    ``tag=TAG``, ``since=WHEN``, ``limit=N`` (``pytest --replay-filter``); ValueError."""
    fields: dict[str, Any] = {"tags": ()}
    for word in (w for text in words for w in text.replace(",", " ").split()):
        key, eq, value = word.partition("=")
        if word == "failed":
            fields["failed"] = True
        elif eq and key in ("entry", "model", "tool"):
            fields[key] = value
        elif eq and key == "tag":
            fields["tags"] = (*fields["tags"], value)
        elif eq and key == "since":
            fields["since"] = parse_since(value)
        elif eq and key == "limit" and value.isdigit():
            fields["limit"] = int(value)
        else:
            raise ValueError(f"unknown run filter {word!r}: use failed, entry=TEXT, "
                             "model=PREFIX, tool=NAME, tag=TAG, since=WHEN or limit=N")
    return Query(**fields)


def rows_json(rows: Iterable[RunRow]) -> str:
    """Rows as one JSON array (``replay ls --json``)."""
    return json.dumps([r.to_json() for r in rows], indent=1)
