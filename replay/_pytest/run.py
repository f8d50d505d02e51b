"""One test's run under the pytest plugin: its cassette, its settings, its wrapper.

The record/replay :class:`~replay.Run` is started *inside* the test function
(the function object is wrapped for the call phase), so for ``async def``
tests it starts in the test's own task, and every contextvar it sets is the
test's. Fixtures run outside the recorded run.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import os
import re
import shlex
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

from replay._capture.session import RecordMode
from replay._cassette import EXTENSION
from replay._cassette.divergence import Grade
from replay._cassette.errors import DivergenceError
from replay._cassette.events import Value
from replay._runs.api import Run, UnconsumedWarning, Unused
from replay._runs.preflight import run_problem
from replay.testing import DriftWarning, LiveRun

MARKER = "replay"
FIXTURE = "replay_run"
PROPERTY = "agent_replay"
"""Name of the ``user_properties`` entry each test's outcome travels in (xdist-safe)."""
_MARK_KEYS = frozenset({"path", "unused", "allow_hosts", "match_on", "redact", "metadata",
                        "options"})
_OUTCOMES = {RecordMode.RECORD: "recorded", RecordMode.REPLAY: "replayed",
             RecordMode.AUTO: "replayed", RecordMode.NEW_EVENTS: "extended"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-\[\]=+,@]+")


@dataclass(frozen=True)
class Settings:
    """The plugin's options after command line and ini are merged."""

    mode: RecordMode
    """``--replay-mode`` / ``replay_mode``."""
    dir: Path | None
    """``--replay-dir`` / ``replay_dir`` (absolute), None: ``cassettes/`` beside each module."""
    dir_from_cli: str | None
    """``--replay-dir`` as typed, repeated in the record command."""
    unused: Unused
    """``--replay-unused`` / ``replay_unused``."""
    drift: str
    """``--replay-drift`` / ``replay_drift``: off, warn or fail."""
    allow_hosts: tuple[str, ...]
    """``--replay-allow-host`` / ``replay_allow_hosts``."""
    invocation_dir: Path
    """Where pytest was started (commands are given relative to it)."""
    rootdir: Path
    """pytest's rootdir."""
    rewrite: bool = False
    """``--replay-mode=rewrite``: replay, and re-record the tests whose cassette is
    missing, unusable or diverged (``mode`` is then ``replay``)."""
    cache: dict[str, Any] = field(default_factory=dict, compare=False)
    """Computed once per session: the live fingerprint drift compares against."""


@dataclass(frozen=True)
class MarkOptions:
    """What ``@pytest.mark.replay(...)`` asked for."""

    path: str | None = None
    unused: Unused | None = None
    allow_hosts: tuple[str, ...] = ()
    redact: bool = True
    metadata: dict[str, Value] | None = None
    options: dict[str, Any] | None = None
    """Extra ``Run.options`` (``match_on`` lands here too)."""


def uses_replay(item: pytest.Item) -> bool:
    """True when the test has the marker or asks for the ``replay_run`` fixture."""
    return (item.get_closest_marker(MARKER) is not None
            or FIXTURE in getattr(item, "fixturenames", ()))


def mark_options(item: pytest.Item) -> MarkOptions:
    """Parse the closest ``replay`` marker; a wrong argument is a usage error."""
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return MarkOptions()
    kwargs = dict(marker.kwargs)
    unknown = sorted(set(kwargs) - _MARK_KEYS)
    if unknown or len(marker.args) > 1 or (marker.args and "path" in kwargs):
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.replay takes one optional path and the keywords "
            f"{', '.join(sorted(_MARK_KEYS))}; got args={marker.args!r} kwargs={kwargs!r}")
    path = marker.args[0] if marker.args else kwargs.get("path")
    if path is not None and not isinstance(path, str | os.PathLike):
        raise pytest.UsageError(f"{item.nodeid}: replay marker path must be a str or path")
    hosts = kwargs.get("allow_hosts", ())
    if isinstance(hosts, str):
        hosts = (hosts,)
    unused = kwargs.get("unused")
    try:
        parsed_unused = Unused(unused) if unused is not None else None
    except ValueError:
        raise pytest.UsageError(f"{item.nodeid}: replay marker unused= must be one of "
                                f"ignore, warn, fail, not {unused!r}") from None
    options = dict(kwargs.get("options") or {})
    if "match_on" in kwargs:
        options["match_on"] = kwargs["match_on"]
    return MarkOptions(os.fspath(path) if path is not None else None, parsed_unused,
                       tuple(str(h) for h in hosts), bool(kwargs.get("redact", True)),
                       kwargs.get("metadata"), options)


def _test_name(item: pytest.Item) -> str:
    parts = item.nodeid.split("::")[1:] or [item.name]
    name = ".".join(parts)
    name = _UNSAFE.sub("_", name).strip("._") or "test"
    return name[:150]


def cassette_root(item: pytest.Item, settings: Settings) -> Path:
    """The folder a module's cassettes live in, before the per-module folder."""
    if settings.dir is not None:
        return settings.dir
    return item.path.parent / "cassettes"


def module_dir(item: pytest.Item, settings: Settings) -> Path:
    """The folder the default cassettes of ``item``'s module go in."""
    if settings.dir is None:
        return item.path.parent / "cassettes" / item.path.stem
    try:
        rel = item.path.relative_to(settings.rootdir).with_suffix("")
    except ValueError:
        rel = Path(item.path.stem)
    return settings.dir / rel


def cassette_path(item: pytest.Item, settings: Settings, opts: MarkOptions) -> Path:
    """The test's cassette: the marker's path, or one per test beside its module."""
    if opts.path is None:
        return module_dir(item, settings) / (_test_name(item) + EXTENSION)
    given = opts.path if opts.path.endswith(EXTENSION) else opts.path + EXTENSION
    path = Path(given)
    return path if path.is_absolute() else cassette_root(item, settings) / path


def node_target(item: pytest.Item, settings: Settings) -> str:
    """The test's node id as typed from where pytest was started."""
    rel = os.path.relpath(item.path, settings.invocation_dir)
    rest = item.nodeid.split("::", 1)[1] if "::" in item.nodeid else ""
    return f"{rel}::{rest}" if rest else rel


def pytest_command(mode: str, targets: list[str], settings: Settings) -> str:
    """``pytest --replay-mode=MODE [--replay-dir=...] TARGET...``, quoted for a shell."""
    extra = f" --replay-dir={shlex.quote(settings.dir_from_cli)}" if settings.dir_from_cli else ""
    return f"pytest --replay-mode={mode}{extra} " + " ".join(shlex.quote(t) for t in targets)


def record_command(item: pytest.Item, settings: Settings) -> str:
    """The command that records this test's cassette, from where pytest was started."""
    return pytest_command("record", [node_target(item, settings)], settings)


def drift_available() -> bool:
    """True once drift detection (``replay._analysis.drift``) is part of the package."""
    return importlib.util.find_spec("replay._analysis.drift") is not None


def shown(path: str | Path, settings: Settings) -> str:
    """A path as people see it: relative to where pytest was started when shorter."""
    rel = os.path.relpath(path, settings.invocation_dir)
    return rel if not rel.startswith("..") else os.fspath(path)


class ItemRun:
    """The record/replay run of one test; the ``replay_run`` fixture is its ``view``."""

    def __init__(self, item: pytest.Item, settings: Settings, *,
                 rerecord: str | None = None) -> None:
        self.item = item
        self.settings = settings
        self.opts = mark_options(item)
        self.path = cassette_path(item, settings, self.opts)
        self.rerecord = rerecord
        """``rewrite`` mode: why this test is recorded again (``missing``, ``diverged``...)."""
        mode = settings.mode
        if settings.rewrite and not self.path.exists():
            self.rerecord = rerecord or "missing"
        if self.rerecord is not None:
            mode = RecordMode.RECORD
        elif mode is RecordMode.AUTO:  # resolved now, so fixtures know whether to go live
            mode = RecordMode.REPLAY if self.path.exists() else RecordMode.RECORD
        self.mode = mode
        self.view = LiveRun(os.fspath(self.path), mode)
        self.info: dict[str, Any] = {}
        """This test's outcome, as the summary reads it from the report."""

    def _fail(self, message: str, cause: BaseException | None = None) -> NoReturn:
        try:
            pytest.fail(message, pytrace=False)
        except pytest.fail.Exception as failed:
            raise failed from cause

    def _note(self, outcome: str, run: Run | None = None) -> dict[str, Any]:
        if outcome == "recorded" and self.rerecord is not None:
            outcome = "rerecorded"
        info: dict[str, Any] = {"outcome": outcome, "path": os.fspath(self.path),
                                "shown": shown(self.path, self.settings),
                                "target": node_target(self.item, self.settings)}
        if self.rerecord is not None:
            info["why"] = self.rerecord
        result = run.result if run is not None else None
        if result is not None:
            ignored = run is not None and run.unused is Unused.IGNORE
            info.update(recorded=result.recorded, consumed=result.consumed,
                        unused=0 if ignored else len(result.unconsumed))
        self.item.user_properties.append((PROPERTY, info))
        self.info = info
        return info

    def start(self) -> Run:
        """Start the run where the test body runs; fail before it on a cassette that is
        missing or unusable, or an output that cannot be written."""
        mode = self.mode
        if mode is not RecordMode.REPLAY:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        problem = run_problem(mode, self.path, label=shown(self.path, self.settings))
        if problem is not None:
            again = f"record it with:\n  {record_command(self.item, self.settings)}"
            if problem.kind == "missing":
                self._note("missing")
                crashed = (f" (a crashed recording left {problem.partial})"
                           if problem.partial else "")
                self._fail(f"no cassette for this test at {problem.path}{crashed}; {again}")
            self._note("unusable")
            fix = (f"; {again}" if problem.kind in ("not a cassette", "damaged header")
                   else "")
            self._fail(f"{problem}{fix}")
        meta: dict[str, Value] = {"pytest.nodeid": self.item.nodeid}
        meta.update(self.opts.metadata or {})
        run = Run(self.path, mode, redact=self.opts.redact,
                  unused=self.opts.unused or self.settings.unused, metadata=meta)
        run.options.update(self.opts.options or {})
        run.options["allow_hosts"] = self.settings.allow_hosts + self.opts.allow_hosts
        run.start()
        session = run.session
        assert session is not None
        session.listeners.append(self.view._add)
        return run

    def finish(self, run: Run, exc: BaseException | None) -> None:
        """End the run; a divergence becomes the test's failure, with its report."""
        hint = (f"\n\nIf the change is intended, record the test again:\n  "
                f"{record_command(self.item, self.settings)}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnconsumedWarning)
            try:
                result = run.stop(exc)
            except DivergenceError as err:  # only raised when the body itself succeeded
                self.view.result = run.result
                self._note("diverged" if err.divergence.grade is not Grade.UNUSED
                           else "unused", run)
                self._fail(err.divergence.report() + hint, None)
        self.view.result = result
        diverged = [d for d in result.divergences if d.grade is not Grade.UNUSED]
        if diverged:
            self._note("diverged", run)
        else:
            self._note(_OUTCOMES[result.mode] if result.mode is not RecordMode.NEW_EVENTS
                       or result.live else "replayed", run)
            if exc is None:  # a run cut short by an error leaves events unused anyway
                self._rewarn(caught)
        if exc is None and not diverged and result.mode is RecordMode.REPLAY:
            self._check_drift(run)
        if exc is None or not diverged:
            return
        if isinstance(exc, DivergenceError):
            self._fail(exc.divergence.report() + hint, None)
        after = f"{type(exc).__name__}: {exc}".strip()
        self._fail(diverged[0].report() + hint + f"\n\nThe test then failed with {after}", exc)

    def _check_drift(self, run: Run) -> None:
        """``--replay-drift``: offline drift of a clean replay, as a warning or a failure."""
        if self.settings.drift == "off" or not drift_available():
            return
        from replay._analysis.drift import Severity, drift

        if "live" not in self.settings.cache:  # once per session (and xdist worker)
            from replay._analysis.fingerprint import live_fingerprint
            self.settings.cache["live"] = live_fingerprint()
        report = drift(self.path, live=self.settings.cache["live"])
        found = report.at_least(Severity.WARNING)
        if not found:
            return
        self.info["drift"] = len(found)
        text = report.report()
        if self.settings.drift == "fail":
            self.info["outcome"] = "drifted"
            self._fail(f"the recording has drifted from the live context:\n{text}\n\n"
                       f"Record it again if the change is intended:\n  "
                       f"{record_command(self.item, self.settings)}")
        self._rewarn([warnings.WarningMessage(DriftWarning(text), DriftWarning, "", 0)])

    def _rewarn(self, caught: list[warnings.WarningMessage]) -> None:
        """Warnings of the run's end, pointed at the test (dropped after a divergence)."""
        code = getattr(getattr(self.item, "function", None), "__code__", None)
        line = code.co_firstlineno if code is not None else 0
        for w in caught:
            warnings.warn_explicit(w.message, w.category, os.fspath(self.item.path), line)

    def wrap(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func`` run inside this test's record/replay run (sync or async)."""
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                run = self.start()
                try:
                    value = await func(*args, **kwargs)
                except BaseException as exc:
                    self.finish(run, exc)
                    raise
                self.finish(run, None)
                return value
            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            run = self.start()
            try:
                value = func(*args, **kwargs)
            except BaseException as exc:
                self.finish(run, exc)
                raise
            self.finish(run, None)
            return value
        return wrapper
