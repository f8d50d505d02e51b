"""The bundled sample agents record against the emulator and replay offline."""

from __future__ import annotations

from pathlib import Path

import anthropic

import replay
from fixtures.agents import anthropic_agent
from fixtures.emulator import Emulator, Script

SCRIPTS = Path(__file__).resolve().parent.parent / "fixtures" / "scripts"


def test_anthropic_streaming_agent_replays_chunk_for_chunk(tmp_path: Path) -> None:
    path = tmp_path / "travel.replay"
    with Emulator(Script.load(SCRIPTS / "travel.json")) as emu:
        client = anthropic.Anthropic(base_url=emu.url, api_key="sk-ant-test-" + "k" * 24)
        with replay.record(path):
            pieces, answers = anthropic_agent.run(client)
        served = emu.request_count
    assert served == 2 and len(answers) == 2 and len(pieces) > 10
    with replay.play(path, unused="fail") as run:
        again = anthropic_agent.run(client)
    assert again == (pieces, answers)
    assert run.result is not None and run.result.ok
    http = [e for e in replay.load(path).events if e.channel == "http"]
    assert len(http) == 2 and all(len(e.chunks) > 5 for e in http)
    assert "sk-ant-test" not in repr(replay.load(path).events)
