"""File size of a conversation-shaped run: it must grow linearly with turns.

Turn i's model call resends all earlier messages (each 300-600 chars of
varied text) plus the new user message, and gets one reply. Without
de-duplication the decompressed records grow quadratically; the file, and
the records, must not.
"""

from __future__ import annotations

import pathlib
import random

from _format_child import golden_header

from replay._cassette import CassetteWriter, VerifyReport, read_cassette, verify
from replay._cassette.codec import pack_plain
from replay._cassette.events import Event

SEED = 31337
VOCAB = ("agent", "tool", "weather", "forecast", "Paris", "Tokyo", "flight", "booking",
         "price", "compare", "search", "result", "error", "retry", "schema", "JSON",
         "because", "however", "therefore", "the", "a", "of", "to", "and", "in", "is",
         "we", "should", "will", "could", "check", "again", "later", "today", "tomorrow",
         "42", "3.14", "2024-05-01", "https://example.com/api", "user_id=17")


def message(rng: random.Random, role: str) -> dict[str, str]:
    size = rng.randint(300, 600)
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < size:
        w = rng.choice(VOCAB)
        words.append(w.capitalize() + "." if rng.random() < 0.08 else w)
    return {"role": role, "content": " ".join(words)[:size]}


def record_conversation(path: pathlib.Path, turns: int) -> tuple[VerifyReport, int]:
    """Write the run; return its report and the size its records would have
    without sharing (every event packed whole)."""
    rng = random.Random(SEED)
    plain = 0
    history: list[dict[str, str]] = [message(rng, "system")]
    with CassetteWriter(path, golden_header()) as w:
        for i in range(turns):
            user = message(rng, "user")
            request = {"method": "POST", "url": "https://llm.example/v1/chat",
                       "body": {"model": "m-1", "messages": [*history, user]}}
            reply = message(rng, "assistant")
            event = Event(seq=i, channel="http", request=request,
                          response={"status": 200, "body": {"choices": [reply]}},
                          start_ns=i * 10**9, duration_ns=8 * 10**8)
            w.write(event)
            plain += len(pack_plain(event.to_map()))
            history += [user, reply]
    return verify(path), plain


def test_conversation_file_grows_linearly(tmp_path: pathlib.Path) -> None:
    r100, plain100 = record_conversation(tmp_path / "c100.replay", 100)
    r200, plain200 = record_conversation(tmp_path / "c200.replay", 200)
    assert r100.ok and r200.ok
    ratio = r200.file_size / r100.file_size
    print(f"\nconversation: 100 turns {r100.file_size} bytes, 200 turns {r200.file_size} "
          f"bytes, ratio {ratio:.3f}; records {r100.raw_size} -> {r200.raw_size} bytes "
          f"(unshared: {plain100} -> {plain200}), {r200.blob_count} blobs")
    assert ratio <= 2.3
    # content is shared, not only found again by zstd: the records are a small
    # fraction of the unshared size (what is left is the lists of refs)
    assert r200.raw_size * 10 < plain200
    events = read_cassette(tmp_path / "c200.replay").events
    assert len(events[-1].request["body"]["messages"]) == 400  # type: ignore[index]
    # the last request shares its messages with the one before it
    last = events[-1].request["body"]["messages"]  # type: ignore[index]
    prev = events[-2].request["body"]["messages"]  # type: ignore[index]
    assert all(a is b for a, b in zip(last, prev, strict=False))
