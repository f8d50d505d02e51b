"""Logical task ids do not depend on tasks that libraries make (issue 14, root cause 1).

Recording opens a real connection: httpx (through anyio) starts a task for it.
Replay opens none. A task the user's code makes afterwards must get the same id
in both runs, so what it asked for is found in the recording.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

import replay
from fixtures.emulator import Emulator, Script, Turn


async def _child() -> str:
    return str(uuid.uuid4())


async def _agent(base_url: str) -> tuple[str, str, list[str]]:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient() as client:
        # One line both opens the connection (anyio's task, live only) and makes a task.
        r, first = await client.post(f"{base_url}/chat/completions", json=body), asyncio.create_task(_child())  # noqa: E501
    second = asyncio.create_task(_child())
    together = await asyncio.gather(_child(), _child())
    return r.json()["choices"][0]["message"]["content"], await first + await second, together


def test_tasks_made_after_a_connection_keep_their_ids(tmp_path: Path) -> None:
    path = tmp_path / "tasks.replay"
    with Emulator(Script([Turn(text="hello")])) as emu:
        url = emu.openai_base_url
        with replay.record(path):
            recorded = asyncio.run(_agent(url))
    tasks = {e.task for e in replay.load(path).events if e.channel == "uuid"}
    assert len(tasks) == 4 and all("~" not in t for t in tasks), tasks
    for _ in range(3):  # the emulator is stopped: nothing to connect to
        with replay.play(path, unused="fail"):
            assert asyncio.run(_agent(url)) == recorded


def test_library_made_tasks_are_named_by_the_library_chain(tmp_path: Path) -> None:
    """A task anyio makes for httpx's connection counts under its own site."""
    ids: list[str] = []

    async def agent(base_url: str) -> None:
        from replay._capture import tasks as _tasks

        async def spy() -> None:
            state = _tasks.CURRENT.get()
            assert state is not None
            ids.append(state.id)
        async with httpx.AsyncClient() as client:
            await client.get(f"{base_url}/models")
        await asyncio.create_task(spy())

    with Emulator(Script([Turn(text="x")])) as emu, replay.record(tmp_path / "x.replay"):
        asyncio.run(agent(emu.openai_base_url))
    assert ids and ids[0].startswith("main/loop#0/test_capture_tasks.py:") and "~" not in ids[0]
    assert ids[0].endswith("#0")


_JITTER = random.Random(time.perf_counter_ns())  # seeded explicitly: not captured


def _log_success(i: int) -> str:  # bookkeeping a library hands to a pool
    time.sleep(_JITTER.uniform(0, 0.002))
    return datetime.datetime.now().isoformat()


def _agent_with_a_logging_pool() -> list[str]:
    out: list[str] = []
    pool = ThreadPoolExecutor(4)
    futures = []
    for i in range(12):
        # As litellm's logging, LangChain's executors and asyncio.to_thread do: the work
        # runs in a copy of the caller's context.
        futures.append(pool.submit(contextvars.copy_context().run, _log_success, i))
        out.append(str(time.time()))  # the agent's own clock read, meanwhile
    out += [f.result() for f in futures]
    pool.shutdown(wait=True)
    return out


async def _agent_to_thread() -> list[str]:
    return list(await asyncio.gather(*(asyncio.to_thread(_log_success, i) for i in range(6))))


def test_work_run_in_a_copied_context_is_its_own_task(tmp_path: Path) -> None:
    """Root cause 3: reads in pool threads never race with the submitter's."""
    path = tmp_path / "pool.replay"
    with replay.record(path):
        recorded = (_agent_with_a_logging_pool(), asyncio.run(_agent_to_thread()))
    clock = [e for e in replay.load(path).events if e.channel == "clock"]
    assert len({e.task for e in clock}) == 1 + 12 + 6
    for _ in range(10):  # the pools' scheduling differs every time
        with replay.play(path, unused="fail"):
            assert (_agent_with_a_logging_pool(), asyncio.run(_agent_to_thread())) == recorded


def _nested_work(i: int) -> list[str]:
    # A work item that maps over its own pool, both through copied contexts (LangGraph
    # runs a node in a pool, and the node runs its tools in another).
    with ThreadPoolExecutor(2) as inner:
        futures = [inner.submit(contextvars.copy_context().run, _log_success, j)
                   for j in range(3)]
        return [f.result() for f in futures]


def test_work_nested_in_work_is_its_own_task(tmp_path: Path) -> None:
    def agent() -> list[list[str]]:
        with ThreadPoolExecutor(2) as outer:
            futures = [outer.submit(contextvars.copy_context().run, _nested_work, i)
                       for i in range(2)]
            return [f.result() for f in futures]

    path = tmp_path / "nested.replay"
    with replay.record(path):
        recorded = agent()
    tasks = {e.task for e in replay.load(path).events if e.channel == "clock"}
    assert len(tasks) == 6 and all(t.count("#t") == 2 for t in tasks), tasks
    for _ in range(10):
        with replay.play(path, unused="fail"):
            assert agent() == recorded


def _litellm_agent(litellm: Any, url: str) -> tuple[str, tuple[str, str]]:
    kw: dict[str, Any] = {"model": "openai/gpt-4o", "api_base": url, "api_key": "test",
                          "messages": [{"role": "user", "content": "hi"}]}
    first = litellm.completion(**kw).choices[0].message.content

    async def later() -> tuple[str, str]:
        answer = await litellm.acompletion(**kw)
        return answer.choices[0].message.content, str(uuid.uuid4())

    return first, asyncio.run(later())


def test_loops_a_library_runs_do_not_shift_the_users_loop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a sync completion litellm runs its service hook on the thread's current
    event loop (``run_until_complete``: one root task) or, when the thread has none
    (an ``asyncio.run`` earlier in the process cleared it), with ``asyncio.run``
    (three: the hook and the runner's two shutdown tasks). Recorded with a current
    loop and replayed without one, the user's own ``asyncio.run`` after it must keep
    its id: it was ``main/loop#1`` recorded and ``main/loop#3`` replayed (a
    divergence) while every loop's root task counted under one ``loop`` site."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no cost map download
    litellm = pytest.importorskip("litellm")
    path = tmp_path / "loops.replay"
    loop = asyncio.new_event_loop()
    try:
        with Emulator(Script([Turn(text="sync"), Turn(text="async")])) as emu:
            url = emu.openai_base_url
            asyncio.set_event_loop(loop)  # the hook runs on it
            with replay.record(path):
                recorded = _litellm_agent(litellm, url)
    finally:
        asyncio.set_event_loop(None)  # and from here on with asyncio.run
        loop.close()
    uuids = {e.task for e in replay.load(path).events if e.channel == "uuid"}
    assert "main/loop#0" in uuids, uuids
    for _ in range(2):  # the emulator is stopped: nothing to connect to
        with replay.play(path, unused="fail"):
            assert _litellm_agent(litellm, url) == recorded
