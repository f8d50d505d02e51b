"""Golden cassettes of every released format version keep loading and replaying."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

import replay
from fixtures.agents import core_agent, support_agent

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden"
CASSETTES = sorted(glob.glob(str(GOLDEN / "v*.replay")))


def test_there_is_a_golden_cassette_for_the_current_version() -> None:
    assert any(os.path.basename(p).startswith("v1-") for p in CASSETTES)


@pytest.mark.parametrize("path", CASSETTES, ids=os.path.basename)
def test_golden_cassette_verifies_complete(path: str) -> None:
    report = replay.verify(path)
    assert report.status == "complete", report.describe()
    assert report.events_read > 10


@pytest.mark.parametrize("path", [p for p in CASSETTES if p.endswith("-core.replay")],
                         ids=os.path.basename)
def test_golden_core_run_replays_to_its_transcript(path: str) -> None:
    expected = Path(path[: -len(".replay")] + ".txt").read_text().splitlines()
    with replay.play(path, unused="fail"):
        assert core_agent.run("Paris", 0.2) == expected


@pytest.mark.parametrize("path", [p for p in CASSETTES if p.endswith("-support.replay")],
                         ids=os.path.basename)
def test_golden_support_run_replays_offline(path: str) -> None:
    expected = Path(path[: -len(".replay")] + ".txt").read_text().splitlines()
    with replay.play(path, unused="fail"):
        out = support_agent.run(support_agent.client_for("http://127.0.0.1:47811/v1"))
    assert out.transcript == expected
    assert out.refunded == 4990.0
