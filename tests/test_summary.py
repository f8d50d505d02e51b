"""One-line event summaries (``replay show``): a plain answer is not called a stream."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import openai

import replay
from fixtures.emulator import Emulator, Turn
from replay._analysis.summary import summarize


def test_plain_and_streamed_answers_are_told_apart(
        tmp_path: Path, emulator: Callable[..., Emulator]) -> None:
    emu = emulator(Turn(text="hello there, how are you today?", repeat=True))
    path = tmp_path / "calls.replay"
    with replay.record(path):
        client = openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-test", max_retries=0)
        msgs: list[dict[str, str]] = [{"role": "user", "content": "hi"}]
        client.chat.completions.create(model="gpt-4o", messages=msgs)  # type: ignore[arg-type]
        for _ in client.chat.completions.create(model="gpt-4o", messages=msgs,  # type: ignore[arg-type]
                                                stream=True):
            pass
    plain, stream = [e for e in replay.load(path).events if e.channel == "http"]
    assert summarize(plain, 200).endswith("-> 200, not streamed")
    assert "chunks" not in summarize(plain, 200)
    n = len(stream.chunks)
    assert n > 1 and summarize(stream, 200).endswith(f"-> 200, {n} chunks")
