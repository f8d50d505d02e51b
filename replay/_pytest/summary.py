"""The terminal summary: cassettes recorded, replayed, missing, diverged and unused.

Each test's outcome travels in its report's ``user_properties`` (so pytest-xdist
ships it from the workers to the controller like any report field); stale
cassette files are found where collection happens and, under xdist, sent back
in ``workeroutput``. Nothing is shared between processes but reports.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import pytest

from replay._cassette import EXTENSION
from replay._pytest.run import (
    PROPERTY,
    Settings,
    cassette_path,
    mark_options,
    module_dir,
    pytest_command,
    shown,
    uses_replay,
)

WORKER_KEY = "agent_replay_stale"


class Summary:
    """Outcomes by test, from reports; registered as a plugin object per session."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.by_test: dict[str, dict[str, Any]] = {}
        self.stale: set[str] = set()
        self._deselected: list[pytest.Item] = []
        self.notes: list[str] = []
        """Extra lines for the summary (set by the plugin)."""

    # -- hooks -----------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Take the outcome a test's report carries (under xdist: a worker's report)."""
        for name, value in getattr(report, "user_properties", ()):
            if name == PROPERTY and isinstance(value, dict):
                self.by_test[report.nodeid] = value

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        """Deselected tests still own their cassettes."""
        self._deselected.extend(items)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Find cassette files no collected test uses."""
        self.stale.update(self.find_stale([*session.items, *self._deselected]))
        self._deselected.clear()

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Under xdist, send this worker's findings to the controller."""
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[WORKER_KEY] = sorted(self.stale)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist controller: merge what a worker found."""
        found = getattr(node, "workeroutput", {}).get(WORKER_KEY) or []
        self.stale.update(str(p) for p in found)

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int,
                                config: pytest.Config) -> None:
        """List the cassettes recorded, replayed, missing, diverged and unused."""
        if hasattr(config, "workerinput"):
            return
        lines = self.lines(config.get_verbosity()) + self.notes
        if lines:
            terminalreporter.write_sep("-", "agent-replay")
            for line in lines:
                terminalreporter.write_line(line)

    def find_stale(self, items: Iterable[pytest.Item]) -> list[str]:
        """Cassette files in the default folders of collected modules that no test uses."""
        expected: set[str] = set()
        folders: set[str] = set()
        for item in items:
            if not uses_replay(item):
                continue
            folders.add(os.fspath(module_dir(item, self.settings)))
            try:
                expected.add(os.path.abspath(cassette_path(item, self.settings,
                                                           mark_options(item))))
            except pytest.UsageError:
                continue
        stale: list[str] = []
        for folder in sorted(folders):
            try:
                names = sorted(os.listdir(folder))
            except OSError:
                continue
            for name in names:
                path = os.path.abspath(os.path.join(folder, name))
                if name.endswith(EXTENSION) and path not in expected:
                    stale.append(path)
        return stale

    # -- printing ------------------------------------------------------------
    def lines(self, verbose: int) -> list[str]:
        """The summary: counts, then the cassettes worth a look (all with ``-v``)."""
        groups: dict[str, list[str]] = {}
        unused: list[str] = []
        drifted: list[str] = []
        again: list[str] = []
        for info in self.by_test.values():
            outcome = str(info.get("outcome"))
            entry = str(info.get("shown"))
            if outcome in _FAILED and info.get("target"):
                again.append(str(info["target"]))
            if outcome == "rerecorded" and info.get("why"):
                entry += f" (was {info['why']})"
            if info.get("drift") and outcome == "replayed":
                drifted.append(f"{entry}: {info['drift']} finding(s)")
            if info.get("unused") and outcome in ("replayed", "unused"):
                entry += f": {info['unused']} recorded event(s) never asked for"
                if outcome == "replayed":
                    unused.append(entry)
            groups.setdefault(outcome, []).append(entry)
        stale = sorted(shown(p, self.settings) for p in self.stale)
        if not groups and not stale:
            return []
        counts = [f"{len(groups[k])} {label}" for k, (label, _) in _GROUPS.items()
                  if groups.get(k)]
        if unused:
            counts.append(f"{len(unused)} with unused events")
        if drifted:
            counts.append(f"{len(drifted)} with drift warnings")
        if stale:
            counts.append(f"{len(stale)} unused cassette file(s)")
        out = ["cassettes: " + ", ".join(counts)]
        for key, (_, title) in _GROUPS.items():
            paths = sorted(groups.get(key, []))
            if paths and (key != "replayed" or verbose > 0):
                out.append(f"{title}:")
                out += [f"  {p}" for p in paths]
        for title, entries in (("with unused events", sorted(unused)),
                               ("with drift warnings (--replay-drift=warn)", sorted(drifted)),
                               ("cassette files no collected test uses", stale)):
            if entries:
                out.append(f"{title}:")
                out += [f"  {e}" for e in entries]
        if again:
            out.append("record the failing tests again (the others keep their cassettes):")
            out.append("  " + pytest_command("rewrite", sorted(again), self.settings))
        return out


_GROUPS = {
    "recorded": ("recorded", "recorded"),
    "rerecorded": ("re-recorded", "recorded again (--replay-mode=rewrite)"),
    "replayed": ("replayed", "replayed"),
    "extended": ("extended", "extended with new events (--replay-mode=new-events)"),
    "missing": ("missing", "missing (record with --replay-mode=record)"),
    "unusable": ("unusable", "not usable as cassettes (record with --replay-mode=record)"),
    "diverged": ("diverged", "diverged"),
    "drifted": ("drifted", "drifted from the live context (--replay-drift=fail)"),
    "unused": ("failed on unused events", "failed on unused events (--replay-unused=fail)"),
}
"""Outcome: (label in the counts line, heading of its list)."""

_FAILED = frozenset({"missing", "unusable", "diverged", "unused"})
"""Outcomes that recording the test again fixes (the summary's rewrite command)."""
