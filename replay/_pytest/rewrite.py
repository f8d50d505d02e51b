"""``--replay-mode=rewrite``: replay every test, record again those that need it.

A test whose cassette is missing (or not a usable cassette) is recorded at
once. A test whose replay diverged (or failed on unused events) is run a
second time, whole (its fixtures set up again, so they see a recording run),
recording a new cassette; only the second run's reports are shown. Every
other test replays as usual. The rerun is pytest's own ``runtestprotocol``
called again, the way pytest-rerunfailures reruns a failed test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _pytest.runner import runtestprotocol

from replay._pytest.run import PROPERTY

REWRITE = "rewrite"
"""The ``--replay-mode`` value (a pytest mode: the core modes are in ``RecordMode``)."""

RERECORD = frozenset({"diverged", "unused", "unusable"})
"""Replay outcomes after which a ``rewrite`` run records the test again."""


def run_rewriting(item: pytest.Item, nextitem: pytest.Item | None,
                  fresh: Callable[[str | None], None],
                  info: Callable[[], dict[str, Any]]) -> bool:
    """Run ``item``'s protocol; again, recording, when its replay diverged.

    ``fresh(why)`` makes the test's run (``why``: the reason to record, or None
    to replay); ``info()`` is that run's outcome.
    """
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    fresh(None)
    reports = runtestprotocol(item, nextitem=nextitem, log=False)
    outcome = info().get("outcome")
    if outcome in RERECORD:
        item.user_properties[:] = [p for p in item.user_properties if p[0] != PROPERTY]
        fresh(str(outcome))
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
    for report in reports:
        ihook.pytest_runtest_logreport(report=report)
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
