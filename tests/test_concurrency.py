"""Parallel tool calls and model streams: recorded once, replayed under shuffled scheduling.

The parallel agent runs 8 async tool calls through ``asyncio.gather``, 4 tool
calls in threads and 2 streamed model calls in an ``asyncio.TaskGroup``, all at
once. Each replay injects random pauses at the agent's scheduling points, drawn
from a generator agent-replay does not see and slept through the real (saved)
``asyncio.sleep`` / ``time.sleep``, so the tasks interleave differently every
time. Per-task matching must give 0 divergences and the recorded transcript
byte for byte.
"""

from __future__ import annotations

import asyncio
import functools
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import replay
from fixtures.agents import parallel_agent
from fixtures.emulator import Emulator, Script, Turn, When
from replay._capture import patch as _patch

REPLAYS = 50
SCRIPT = Script([
    # Both questions arrive at once, in any order: each answer stays on its turn
    # (repeat) and alpha appears again after beta, so either order is served.
    Turn(text="Alpha: three independent sources agree on the figure.",
         when=When(last_user_contains="alpha"), repeat=True),
    Turn(text="Beta: results are mixed; two runs disagree.",
         when=When(last_user_contains="beta"), repeat=True),
    Turn(text="Alpha: three independent sources agree on the figure.",
         when=When(last_user_contains="alpha"), repeat=True),
], chunk_size=4, latency_ms=1)


class Jitter:
    """Random pauses from a private generator, slept through the unpatched sleeps."""

    def __init__(self, seed: int, most: float = 0.002) -> None:
        self.rng = random.Random(seed)
        self.most = most
        self.lock = threading.Lock()

    def _draw(self) -> float:
        with self.lock:
            return self.rng.uniform(0, self.most)

    async def pause(self) -> None:
        await _patch._asyncio_sleep(self._draw())

    def pause_sync(self) -> None:
        _patch._sleep(self._draw())


def _note_seq(into: list[int], event: replay.Event) -> None:
    into.append(event.seq)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, list[str]]]:
    path = tmp_path_factory.mktemp("parallel") / "parallel.replay"
    with Emulator(SCRIPT) as emu:
        url = emu.openai_base_url
        with replay.record(path):
            transcript = asyncio.run(parallel_agent.run_agent(url))
        assert emu.request_count == 2 and not emu.unmatched
    yield path, url, transcript


def test_task_ids_come_from_creation_sites(recorded: tuple[Path, str, list[str]]) -> None:
    path, _, _ = recorded
    events = replay.load(path).events
    tasks = {e.task for e in events}
    tool_tasks = {e.task for e in events if e.channel == "tool:fetch_doc"}
    thread_tasks = {e.task for e in events if e.channel == "tool:lookup"}
    http_tasks = {e.task for e in events if e.channel == "http"}
    assert len(tool_tasks) == 8 and len(thread_tasks) == 4 and len(http_tasks) == 2
    assert all("#t" in t for t in thread_tasks)
    # the ids name the agent's own lines, never object ids or thread idents
    assert all(t.startswith("main/loop#0/parallel_agent.py:") for t in tasks - {"main/loop#0"})
    assert sorted(t.rsplit("#", 1)[1] for t in tool_tasks) == [str(i) for i in range(8)]
    # the two streams kept their chunks
    assert all(len(e.chunks) > 3 for e in events if e.channel == "http")


def test_fifty_shuffled_replays_are_byte_identical(
        recorded: tuple[Path, str, list[str]]) -> None:
    path, url, transcript = recorded
    expected = "\n".join(transcript).encode()
    orders: set[tuple[int, ...]] = set()
    reordered: list[int] = []
    t0 = time.perf_counter()
    for i in range(REPLAYS):
        parallel_agent.SHUFFLE = Jitter(seed=1000 + i)
        served: list[int] = []
        try:
            with replay.play(path, unused="fail") as run:
                assert run.session is not None
                run.session.listeners.append(functools.partial(_note_seq, served))
                out = asyncio.run(parallel_agent.run_agent(url))
        finally:
            parallel_agent.SHUFFLE = None
        result = run.result
        assert result is not None
        assert result.divergences == () and result.ok, result.report()
        assert "\n".join(out).encode() == expected
        orders.add(tuple(served))
        reordered.append(result.reordered)
    elapsed = time.perf_counter() - t0
    print(f"\n{REPLAYS} shuffled replays in {elapsed:.2f}s; {len(orders)} distinct serving "
          f"orders; reordered events per replay min {min(reordered)} max {max(reordered)}")
    assert len(orders) > REPLAYS // 2  # the scheduling really was shuffled
    assert min(reordered) > 0
    assert elapsed < 30  # a few seconds on an idle machine


def test_thread_and_taskgroup_ids_do_not_depend_on_start_order(tmp_path: Path) -> None:
    """Threads started in the recorded order but finishing in reverse still match."""
    path = tmp_path / "threads.replay"

    @replay.tool
    def work(i: int) -> float:
        return random.random() + i

    def job(i: int, delay: float) -> float:
        _patch._sleep(delay)
        return work(i) + time.time() * 0

    def agent(delays: list[float]) -> list[float]:
        out = [0.0] * 4
        threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, job(i, delays[i])))
                   for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out

    with replay.record(path):
        first = agent([0.0, 0.005, 0.01, 0.015])
    with replay.play(path, unused="fail") as run:
        again = agent([0.015, 0.01, 0.005, 0.0])
    assert again == first
    assert run.result is not None and run.result.reordered > 0


async def test_taskgroup_replays_in_any_completion_order(tmp_path: Path) -> None:
    path = tmp_path / "tg.replay"

    @replay.tool
    async def probe(i: int) -> dict[str, float]:
        return {"i": i, "v": random.random()}

    async def agent(delays: list[float]) -> list[dict[str, float]]:
        async def one(i: int) -> dict[str, float]:
            await _patch._asyncio_sleep(delays[i])
            stamp = time.time()
            got = await probe(i)
            return {**got, "stamp": stamp}
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(i)) for i in range(5)]
        return [t.result() for t in tasks]

    async with replay.record(path):
        first = await agent([0.0, 0.002, 0.004, 0.006, 0.008])
    async with replay.play(path, unused="fail") as run:
        again = await agent([0.008, 0.006, 0.004, 0.002, 0.0])
    assert again == first
    assert run.result is not None and run.result.ok and run.result.reordered > 0
