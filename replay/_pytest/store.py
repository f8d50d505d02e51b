"""``pytest --replay-store STORE [--replay-filter ...]``: one test per stored run.

Each run the filter selects becomes a test ``replay-store::ID`` that replays the
run strictly through its recorded entry point (``@replay.recorded`` function
or ASGI request) and fails on a divergence, or when the outcome changed (the
recording raised or answered 5xx and the replay did not, or the other way
round); a divergence an SDK wrapped in its own error is reported as the
divergence. A ``crashed`` run replays what its process recorded before it
died; asking past that is where it died, not a divergence, and its outcome
(never reached) is not compared. With ``--replay-drift warn|fail`` the run
is also replayed leniently against the live context and its drift findings reported (``fail``: a
warning or worse fails the test). Items are the same on every xdist worker
(newest first), so ``-n`` spreads them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from replay._analysis.drift import drift, drift_text
from replay._cassette import read_header
from replay._cassette.divergence import Grade
from replay._cassette.errors import DivergenceError, ReplayError
from replay._runs.api import Run, Unused
from replay._runs.bootstrap import chain
from replay._runs.entry import Entry, EntryError, Response, call, entry_of, load
from replay._runs.store import Query, RunRow, RunStatus, Store, open_store
from replay._runs.store.base import parse_filter

PREFIX = "replay-store"


class RunFailed(Exception):
    """A stored run did not replay as recorded (the message says how)."""


class StoreCollector(pytest.Collector):
    """The stored runs a query selects."""

    def __init__(self, *, store: Store, query: Query, unused: Unused, drift_mode: str,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store
        self.query = query
        self.unused = unused
        self.drift_mode = drift_mode

    def collect(self) -> Iterator[pytest.Item]:
        for row in self.store.query(self.query):
            yield RunItem.from_parent(self, name=row.id, row=row)


class RunItem(pytest.Item):
    """One stored run, replayed through its entry point."""

    def __init__(self, *, row: RunRow, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.row = row
        self.user_properties.append(("entry", row.entry))

    @property
    def collector(self) -> StoreCollector:
        parent = self.parent
        assert isinstance(parent, StoreCollector)
        return parent

    def runtest(self) -> None:
        row = self.row
        path = self.collector.store.fetch(row.id)
        try:
            entry = entry_of(read_header(path).meta, f"run {row.id}")
        except EntryError as exc:
            pytest.skip(str(exc))
        # A crashed run's recording stops where its process died: what it holds is
        # replayed strictly, and asking past its end is where the process died.
        crashed = row.status is RunStatus.CRASHED
        run = Run(path, "replay", unused=Unused.IGNORE if crashed else self.collector.unused,
                  allow_damaged=crashed)
        failure: BaseException | None = None
        value: Any = None
        try:  # imports, and an ASGI app's lifespan, run before the replay opens
            value = run.invoke()
        except EntryError as exc:
            raise RunFailed(f"run {row.id} ({row.entry}) diverged:\n{exc}") from None
        except Exception as exc:  # the agent's own exception, replayed (or a divergence)
            failure = exc
        found = _divergence(failure, run)
        if found is not None and not (crashed and run.result is not None
                                      and not run.result.unconsumed):
            raise RunFailed(f"run {row.id} ({row.entry}) diverged:\n{found}") from None
        if crashed:  # the outcome it never reached is not compared
            return
        self._check_outcome(failure, value)
        if self.collector.drift_mode != "off":
            self._drift(path, entry)

    def _check_outcome(self, failure: BaseException | None, value: Any) -> None:
        row = self.row
        recorded = row.error if row.error and not row.error.startswith(("flagged", "HTTP ")) \
            else None
        if isinstance(value, Response):
            was = row.attrs.get("http_status")
            if was is not None and str(value.status) != was:
                raise RunFailed(f"run {row.id}: recorded HTTP {was}, replayed HTTP "
                                f"{value.status}")
            return
        now = f"{type(failure).__name__}: {failure}" if failure is not None else None
        if (recorded is None) != (now is None) or (
                recorded and now and recorded.split(":")[0] != now.split(":")[0]):
            raise RunFailed(f"run {row.id}: the outcome changed: recorded "
                            f"{recorded or 'a return'}, replayed {now or 'a return'}")

    def _drift(self, path: str, entry: Entry) -> None:
        target = load(entry)

        def agent() -> object:
            with contextlib.suppress(Exception):
                return call(entry, target)
            return None

        report = drift(path, agent=agent)
        text = drift_text(report)
        self.add_report_section("call", "drift", text)
        if self.collector.drift_mode == "fail" and report.at_least("warning"):
            raise RunFailed(f"run {self.row.id} drifted:\n{text}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, RunFailed | ReplayError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int | None, str]:
        return (f"{PREFIX}:{self.row.id}", None, f"{self.row.entry} ({self.row.status.value})")


def _divergence(failure: BaseException | None, run: Run) -> DivergenceError | None:
    """The divergence that ended a replayed run: the exception itself, one it was
    raised from or during (an SDK wrapping it, as anthropic's client does), else one
    the run noted (code that caught it)."""
    for link in chain(failure) if failure is not None else ():
        if isinstance(link, DivergenceError):
            return link
    real = [d for d in (run.result.divergences if run.result is not None else ())
            if d.grade is not Grade.UNUSED]
    return DivergenceError(real[0]) if real else None


def collector(session: pytest.Session, url: str, filters: list[str], unused: Unused,
              drift_mode: str) -> StoreCollector:
    """The collector of ``url``'s runs that ``filters`` select (UsageError when bad)."""
    try:
        query = parse_filter(filters)
        store = open_store(url, create=False)
    except (ValueError, ReplayError) as exc:
        raise pytest.UsageError(f"agent-replay: {exc}") from None
    return StoreCollector.from_parent(session, name=PREFIX, store=store, query=query,
                                      unused=unused, drift_mode=drift_mode)
