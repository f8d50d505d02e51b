"""The agent-replay pytest plugin (entry point ``pytest11: agent_replay``).

    @pytest.mark.replay                       # tests/cassettes/test_x/test_y.replay
    def test_y(replay_run):
        agent()
        assert replay_run.tool("get_weather")[0].args == {"city": "Paris", "unit": "C"}

A test with the ``replay`` marker (or asking for the ``replay_run`` fixture)
runs inside a record/replay run of its own cassette. By default nothing is
recorded: a missing cassette fails with the command that records it.

Options (command line, then ini): ``--replay-mode`` / ``replay_mode``
(record, replay, auto, new-events; default replay), ``--replay-dir`` /
``replay_dir``, ``--replay-unused`` / ``replay_unused`` (ignore, warn, fail),
``--replay-drift`` / ``replay_drift`` (off, warn, fail), ``--replay-allow-host``
/ ``replay_allow_hosts``. See docs/pytest.md.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from replay._capture.session import RecordMode
from replay._pytest.rewrite import REWRITE, run_rewriting
from replay._pytest.run import MARKER, ItemRun, Settings, drift_available, uses_replay
from replay._pytest.summary import Summary
from replay._runs.api import Unused
from replay.testing import LiveRun

_SETTINGS = pytest.StashKey[Settings]()
_SUMMARY = pytest.StashKey[Summary]()
_ITEM_RUN = pytest.StashKey[ItemRun]()
_DRIFT_CHOICES = ("off", "warn", "fail")
_UNUSED_CHOICES = tuple(u.value for u in Unused)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Command-line options and their ini twins."""
    group = parser.getgroup("agent-replay", "agent-replay: record and replay agent runs")
    modes = [m.value for m in RecordMode] + [REWRITE]
    group.addoption("--replay-mode", choices=modes, default=None,
                    help="how @pytest.mark.replay tests use their cassettes "
                         "(default: replay, never record unless asked; rewrite: replay, "
                         "and record again the tests whose cassette is missing or diverged)")
    group.addoption("--replay-dir", default=None, metavar="DIR",
                    help="keep cassettes under DIR/<module path>/ instead of a cassettes/ "
                         "folder beside each test module")
    group.addoption("--replay-unused", choices=_UNUSED_CHOICES, default=None,
                    help="recorded events a replayed test never asked for (default: warn)")
    group.addoption("--replay-drift", choices=_DRIFT_CHOICES, default=None,
                    help="report drift between the recording's context and the live one "
                         "(default: off)")
    group.addoption("--replay-allow-host", action="append", default=None, metavar="HOST",
                    dest="replay_allow_host",
                    help="a host replayed tests may still reach (repeatable), "
                         "e.g. a local database")
    group.addoption("--replay-store", default=None, metavar="STORE",
                    help="collect one test per run in this run store (a folder or "
                         "s3://bucket/prefix), replayed through its entry point")
    group.addoption("--replay-filter", action="append", default=[], metavar="FILTER",
                    help="with --replay-store: failed, entry=TEXT, model=PREFIX, tool=NAME, "
                         "tag=TAG, since=WHEN (2h, 7d, a date), limit=N; repeatable")
    parser.addini("replay_mode", "default --replay-mode", default="replay")
    parser.addini("replay_dir", "default --replay-dir (relative to the rootdir)", default="")
    parser.addini("replay_unused", "default --replay-unused", default="warn")
    parser.addini("replay_drift", "default --replay-drift", default="off")
    parser.addini("replay_allow_hosts", "hosts replayed tests may reach", type="args",
                  default=[])


def _settings(config: pytest.Config) -> Settings:
    def pick(option: str, ini: str) -> str:
        value = config.getoption(option)
        return str(value) if value is not None else str(config.getini(ini))

    raw_mode = pick("replay_mode", "replay_mode")
    rewrite = raw_mode.strip().lower() == REWRITE
    try:
        mode = RecordMode.REPLAY if rewrite else RecordMode.parse(raw_mode)
    except ValueError as exc:
        raise pytest.UsageError(f"agent-replay: {exc}") from None
    unused = pick("replay_unused", "replay_unused")
    if unused not in _UNUSED_CHOICES:
        raise pytest.UsageError(f"agent-replay: replay_unused must be one of "
                                f"{', '.join(_UNUSED_CHOICES)}, not {unused!r}")
    drift = pick("replay_drift", "replay_drift")
    if drift not in _DRIFT_CHOICES:
        raise pytest.UsageError(f"agent-replay: replay_drift must be one of "
                                f"{', '.join(_DRIFT_CHOICES)}, not {drift!r}")
    cli_dir = config.getoption("replay_dir")
    raw_dir = cli_dir or config.getini("replay_dir")
    base = config.invocation_params.dir if cli_dir else config.rootpath
    hosts = list(config.getini("replay_allow_hosts")) + list(
        config.getoption("replay_allow_host") or [])
    return Settings(
        mode=mode,
        dir=(base / raw_dir).resolve() if raw_dir else None,
        dir_from_cli=cli_dir, unused=Unused(unused), drift=drift, rewrite=rewrite,
        allow_hosts=tuple(dict.fromkeys(hosts)),
        invocation_dir=Path(config.invocation_params.dir), rootdir=Path(config.rootpath))


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and read the options."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(path=None, *, unused=None, allow_hosts=(), match_on=None, redact=True, "
        "metadata=None, options=None): run the test inside a record/replay run of its "
        "cassette (agent-replay)")
    settings = _settings(config)
    config.stash[_SETTINGS] = settings
    summary = Summary(settings)
    if settings.drift != "off" and not drift_available():
        summary.notes = [f"--replay-drift={settings.drift}: drift detection is not available "
                         f"yet; nothing was checked"]
    config.stash[_SUMMARY] = summary
    config.pluginmanager.register(summary, "agent-replay-summary")
    if settings.rewrite:
        config.pluginmanager.register(_Rewrite(), "agent-replay-rewrite")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                   items: list[pytest.Item]) -> None:
    """``--replay-store``: add one test per stored run the filters select."""
    url = config.getoption("replay_store")
    if not url:
        return
    from replay._pytest.store import collector
    s = config.stash[_SETTINGS]
    runs = collector(session, url, list(config.getoption("replay_filter") or []), s.unused,
                     s.drift)
    items.extend(runs.collect())


def pytest_report_header(config: pytest.Config) -> str:
    """One line saying how cassettes are used in this session."""
    s = config.stash[_SETTINGS]
    where = str(s.dir) if s.dir is not None else "cassettes/ beside each test module"
    hosts = f", allow hosts {', '.join(s.allow_hosts)}" if s.allow_hosts else ""
    drift = s.drift
    if drift != "off" and not drift_available():
        drift += " (not available yet: drift detection has not landed; ignored)"
    return (f"agent-replay: mode {REWRITE if s.rewrite else s.mode.value}, cassettes in "
            f"{where}, unused events "
            f"{s.unused.value}, drift {drift}{hosts}")


@pytest.fixture
def replay_run(request: pytest.FixtureRequest) -> LiveRun:
    """The test's own record/replay run: its events, model calls and tool calls."""
    return _item_run(request.node).view


def _item_run(item: pytest.Item) -> ItemRun:
    found = item.stash.get(_ITEM_RUN, None)
    if found is None:
        found = ItemRun(item, item.config.stash[_SETTINGS])
        item.stash[_ITEM_RUN] = found
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    """Run the test function (not its fixtures) inside its cassette's run."""
    if not isinstance(item, pytest.Function) or not uses_replay(item):
        return (yield)
    item_run = _item_run(item)
    original = item.obj
    item.obj = item_run.wrap(original)
    try:
        return (yield)
    finally:
        item.obj = original


class _Rewrite:
    """Registered for ``--replay-mode=rewrite`` only."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item,
                                nextitem: pytest.Item | None) -> bool | None:
        """A test whose replay diverged runs again, recording."""
        if not uses_replay(item):
            return None
        settings = item.config.stash[_SETTINGS]

        def fresh(rerecord: str | None) -> None:
            item.stash[_ITEM_RUN] = ItemRun(item, settings, rerecord=rerecord)

        return run_rewriting(item, nextitem, fresh, lambda: item.stash[_ITEM_RUN].info)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, Any, Any]:
    """Drop the test's run (and the events it holds) once the test is done."""
    try:
        return (yield)
    finally:
        if _ITEM_RUN in item.stash:
            del item.stash[_ITEM_RUN]
