"""Many runs in one process: each session belongs to the context that opened it.

A hundred agents record at once under ``asyncio.gather`` (each with its own
``replay.record``), sessions are opened in threads and in executor work, and
recordings and replays run side by side. Every agent reads the clock, random
numbers and uuids, calls a tool, makes an HTTP request to a local server, and
hands work to child tasks, a thread and an executor. No cross-talk is checked
by content: every value a cassette holds is one its own agent returned, and
every value an agent returned is in its own cassette. Each run then replays
alone and in shuffled groups, serving exactly its recorded events and giving
back the recorded outputs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

import replay
from replay._capture import patch as _patch

RUNS = 100


class Jitter:
    """Random pauses from a private generator, slept through the unpatched sleeps."""

    def __init__(self, seed: int, most: float = 0.002) -> None:
        self.rng = random.Random(seed)
        self.most = most
        self.lock = threading.Lock()

    def draw(self) -> float:
        with self.lock:
            return self.rng.uniform(0, self.most)

    async def pause(self) -> None:
        await _patch.real_asyncio_sleep(self.draw())

    def pause_sync(self) -> None:
        _patch.real_sleep(self.draw())


class Echo:
    """A loopback HTTP server answering ``/run/N`` with the path and a fresh number."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        echo = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with echo.lock:
                    echo.count += 1
                    n = echo.count
                body = f"{self.path} {n}".encode()
                self.send_response(200)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def echo() -> Iterator[Echo]:
    server = Echo()
    yield server
    server.close()


@replay.tool
async def lookup(run: int, step: int) -> dict[str, Any]:
    """A tool whose arguments name its run."""
    return {"run": run, "step": step, "draw": random.random()}


def _thread_reads(i: int, out: list[Any]) -> None:
    out.append([str(uuid.uuid4()), time.time(), i])


def _work(i: int, jitter: Jitter) -> list[Any]:
    jitter.pause_sync()
    return [random.getrandbits(64), str(uuid.uuid4()), i]


async def _child(i: int, k: int, jitter: Jitter) -> list[Any]:
    await jitter.pause()
    return [str(uuid.uuid4()), random.random(), time.time_ns(), i, k]


async def agent(i: int, url: str, jitter: Jitter) -> dict[str, Any]:
    """One run: reads of every kind, in the run's own task, children, a thread, work."""
    out: dict[str, Any] = {"uuid": [], "random": [], "clock": [], "tool": [], "http": []}
    async with httpx.AsyncClient(timeout=60) as client:
        for step in range(2):
            await jitter.pause()
            out["uuid"].append(str(uuid.uuid4()))
            out["random"].append(random.random())
            out["clock"].append(time.time())
            out["tool"].append(await lookup(i, step))
            out["http"].append((await client.get(f"{url}/run/{i}/{step}")).text)
    out["children"] = await asyncio.gather(*(_child(i, k, jitter) for k in range(2)))
    out["to_thread"] = await asyncio.to_thread(_work, i, jitter)
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        out["executor"] = list(await asyncio.gather(*(
            asyncio.wrap_future(pool.submit(_work, i, jitter)) for _ in range(2))))
    got: list[Any] = []
    t = threading.Thread(target=_thread_reads, args=(i, got))
    t.start()
    await loop.run_in_executor(None, t.join)
    out["thread"] = got
    return out


def flatten(out: dict[str, Any]) -> dict[str, list[Any]]:
    """Every uuid, random draw and clock read an agent returned, by channel."""
    uuids = list(out["uuid"]) + [c[0] for c in out["children"]]
    uuids += [out["to_thread"][1]] + [w[1] for w in out["executor"]] + [out["thread"][0][0]]
    randoms = list(out["random"]) + [c[1] for c in out["children"]]
    randoms += [t["draw"] for t in out["tool"]]
    randoms += [out["to_thread"][0]] + [w[0] for w in out["executor"]]
    clocks = list(out["clock"]) + [c[2] for c in out["children"]] + [out["thread"][0][1]]
    return {"uuid": sorted(uuids), "random": sorted(map(repr, randoms)),
            "clock": sorted(map(repr, clocks))}


def contents(path: Path) -> dict[str, list[Any]]:
    """The same values, read from the cassette, plus the tool and HTTP requests."""
    events = replay.load(path).events
    by: dict[str, list[Any]] = {"uuid": [], "random": [], "clock": [], "tool": [], "http": []}
    for ev in events:
        if ev.channel == "uuid":
            by["uuid"].append(ev.response)
        elif ev.channel == "random":
            by["random"].append(repr(ev.response))
        elif ev.channel == "clock":
            by["clock"].append(repr(ev.response))
        elif ev.channel == "tool:lookup":
            by["tool"].append(ev.request)
        elif ev.channel == "http":
            assert isinstance(ev.request, dict)
            by["http"].append(ev.request["url"])
    return {k: sorted(v, key=repr) for k, v in by.items()}


def check_own(path: Path, i: int, out: dict[str, Any], url: str) -> None:
    """The cassette holds exactly the reads its own agent made, and nobody else's."""
    got = contents(path)
    want = flatten(out)
    for channel in ("uuid", "random", "clock"):
        assert sorted(got[channel], key=repr) == sorted(want[channel], key=repr), (i, channel)
    assert [t["args"]["run"] for t in got["tool"]] == [i, i]
    assert got["http"] == [f"{url}/run/{i}/0", f"{url}/run/{i}/1"]
    assert all(h.startswith(f"/run/{i}/") for h in out["http"])


async def record_one(i: int, path: Path, url: str, seed: int) -> dict[str, Any]:
    with replay.record(path):
        return await agent(i, url, Jitter(seed))


async def play_one(i: int, path: Path, url: str, seed: int
                   ) -> tuple[dict[str, Any], list[replay.Event], replay.ReplayResult]:
    served: list[replay.Event] = []
    with replay.play(path, unused="fail") as run:
        assert run.session is not None
        run.session.listeners.append(served.append)
        out = await agent(i, url, Jitter(seed))
    assert run.result is not None
    return out, served, run.result


def check_replay(path: Path, recorded: dict[str, Any], got: tuple[
        dict[str, Any], list[replay.Event], replay.ReplayResult]) -> None:
    out, served, result = got
    assert result.ok, result.report()
    assert out == recorded
    # every recorded event was served, unchanged (a tool's nested reads come with it)
    events = sorted((e for e in replay.load(path).events if e.parent is None),
                    key=lambda e: e.seq)
    assert sorted(served, key=lambda e: e.seq) == events
    assert repr(sorted(served, key=lambda e: e.seq)) == repr(events)


@pytest.fixture(scope="module")
def hundred(tmp_path_factory: pytest.TempPathFactory, echo: Echo
            ) -> tuple[Path, list[dict[str, Any]], list[Any]]:
    root = tmp_path_factory.mktemp("hundred")
    outside: list[Any] = []

    async def bystander(stop: asyncio.Event) -> None:
        # Runs beside the sessions, in none of them: its reads go nowhere.
        while not stop.is_set():
            outside.append(str(uuid.uuid4()))
            outside.append(repr(time.time()))
            await _patch.real_asyncio_sleep(0.001)

    async def main() -> list[dict[str, Any]]:
        stop = asyncio.Event()
        watcher = asyncio.create_task(bystander(stop))
        outs = await asyncio.gather(*(record_one(i, root / f"run_{i}.replay", echo.url, i)
                                      for i in range(RUNS)))
        stop.set()
        await watcher
        return list(outs)

    outs = asyncio.run(main())
    return root, outs, outside


def test_hundred_concurrent_recordings_hold_only_their_own_reads(
        hundred: tuple[Path, list[dict[str, Any]], list[Any]], echo: Echo) -> None:
    root, outs, outside = hundred
    assert not _patch.installed()
    everything: set[str] = set()
    for i, out in enumerate(outs):
        path = root / f"run_{i}.replay"
        check_own(path, i, out, echo.url)
        got = contents(path)
        everything.update(got["uuid"])
        everything.update(got["clock"])
        tasks = {e.task for e in replay.load(path).events}
        assert "main" in tasks and all(t.startswith("main") for t in tasks)
    assert outside and not everything & set(outside)


def test_each_run_replays_alone(hundred: tuple[Path, list[dict[str, Any]], list[Any]],
                                echo: Echo) -> None:
    root, outs, _ = hundred
    before = echo.count
    for i in range(0, RUNS, 7):
        path = root / f"run_{i}.replay"
        got = asyncio.run(play_one(i, path, echo.url, seed=5000 + i))
        check_replay(path, outs[i], got)
    assert echo.count == before  # strict replay reached nothing


def test_runs_replay_in_shuffled_concurrent_groups(
        hundred: tuple[Path, list[dict[str, Any]], list[Any]], echo: Echo) -> None:
    root, outs, _ = hundred
    before = echo.count
    for attempt in range(2):
        order = list(range(RUNS))
        random.Random(attempt).shuffle(order)

        async def group(ids: list[int], attempt: int = attempt) -> list[Any]:
            return list(await asyncio.gather(*(
                play_one(i, root / f"run_{i}.replay", echo.url, seed=attempt * 1000 + i)
                for i in ids)))

        for start in range(0, RUNS, 25):
            ids = order[start:start + 25]
            for i, got in zip(ids, asyncio.run(group(ids)), strict=True):
                check_replay(root / f"run_{i}.replay", outs[i], got)
    assert echo.count == before


def test_recording_and_replaying_at_the_same_time(
        hundred: tuple[Path, list[dict[str, Any]], list[Any]], echo: Echo,
        tmp_path: Path) -> None:
    root, outs, _ = hundred

    async def main() -> tuple[list[Any], list[Any]]:
        plays = [play_one(i, root / f"run_{i}.replay", echo.url, seed=9000 + i)
                 for i in range(20)]
        records = [record_one(RUNS + i, tmp_path / f"new_{i}.replay", echo.url, seed=i)
                   for i in range(20)]
        done = await asyncio.gather(*plays, *records)
        return list(done[:20]), list(done[20:])

    before = echo.count
    played, recorded = asyncio.run(main())
    assert echo.count == before + 20 * 2  # only the recordings reached the server
    for i, got in enumerate(played):
        check_replay(root / f"run_{i}.replay", outs[i], got)
    for i, out in enumerate(recorded):
        check_own(tmp_path / f"new_{i}.replay", RUNS + i, out, echo.url)


def _sync_agent(i: int, jitter: Jitter) -> list[Any]:
    out: list[Any] = []
    for _ in range(3):
        jitter.pause_sync()
        out.append([str(uuid.uuid4()), random.random(), time.time()])
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        out.append([f.result() for f in [pool.submit(_work, i, jitter) for _ in range(3)]])
    got: list[Any] = []
    threads = [threading.Thread(target=_thread_reads, args=(i, got)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.append(sorted(got, key=repr))
    return out


def test_sessions_opened_in_threads(tmp_path: Path) -> None:
    def record(i: int) -> list[Any]:
        with replay.record(tmp_path / f"t{i}.replay"):
            return _sync_agent(i, Jitter(i))

    def play(i: int) -> list[Any]:
        with replay.play(tmp_path / f"t{i}.replay", unused="fail"):
            return _sync_agent(i, Jitter(100 + i))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        recorded = list(pool.map(record, range(16)))
    for i, out in enumerate(recorded):
        uuids = {ev.response for ev in replay.load(tmp_path / f"t{i}.replay").events
                 if ev.channel == "uuid"}
        mine = {row[0] for row in out[:3]} | {w[1] for w in out[3]} | {g[0] for g in out[4]}
        assert uuids == mine, i
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        order = list(range(16))
        random.Random(3).shuffle(order)
        played = dict(zip(order, pool.map(play, order), strict=True))
    assert [played[i] for i in range(16)] == recorded


def test_sessions_do_not_nest_in_their_own_context(tmp_path: Path) -> None:
    async def main() -> None:
        with replay.record(tmp_path / "outer.replay"):
            # a task the run starts belongs to it: a session there would nest
            async def inner() -> None:
                with replay.record(tmp_path / "inner.replay"):
                    pass
            with pytest.raises(replay.SessionError, match="cannot be nested"):
                await asyncio.create_task(inner())
            with pytest.raises(replay.SessionError, match="already active in this context"):
                with replay.play(tmp_path / "outer.replay"):
                    pass

    asyncio.run(main())
    assert not (tmp_path / "inner.replay").exists()


def test_a_thread_that_outlives_its_run_passes_through(tmp_path: Path) -> None:
    path = tmp_path / "short.replay"
    go = threading.Event()
    late: list[Any] = []

    def linger() -> None:
        go.wait()
        late.append((time.time(), str(uuid.uuid4())))

    with replay.record(path):
        time.time()
        t = threading.Thread(target=linger)
        t.start()
    go.set()
    t.join()
    assert late and len(replay.load(path).events) == 1
    assert not _patch.installed()


def test_a_call_begun_in_a_run_that_ends_after_it_returns_unrecorded(tmp_path: Path) -> None:
    """A call a lingering thread or task began inside the run and finishes after the
    run stopped (sse-starlette's shutdown watcher sleeping across a request's end)
    returns as it would unrecorded; before, it raised "write to a closed
    CassetteWriter" into the application."""
    path = tmp_path / "short.replay"
    go, entered = threading.Event(), threading.Event()
    got: list[Any] = []

    @replay.tool
    def slow_lookup(key: str) -> str:
        entered.set()
        go.wait()
        return key.upper()

    def linger() -> None:
        try:
            got.append(slow_lookup("a"))
        except BaseException as exc:  # the thread's outcome is the test's
            got.append(exc)

    async def nap() -> float:
        await asyncio.sleep(0.05)
        return 1.0

    async def main() -> Any:
        with replay.record(path):
            time.time()
            threading.Thread(target=linger).start()
            entered.wait()
            task = asyncio.get_running_loop().create_task(nap())
            await asyncio.sleep(0)
        go.set()
        return await task

    assert asyncio.run(main()) == 1.0
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == ["A"]
    assert [e.channel for e in replay.load(path).events][:1] == ["clock"]


def test_code_outside_every_run_passes_through_while_runs_record(tmp_path: Path) -> None:
    started = threading.Event()
    finish = threading.Event()

    def run() -> None:
        with replay.record(tmp_path / "busy.replay"):
            time.time()
            started.set()
            finish.wait()

    t = threading.Thread(target=run)
    t.start()
    started.wait()
    assert _patch.installed()
    mine = [str(uuid.uuid4()) for _ in range(5)] + [repr(time.time())]
    finish.set()
    t.join()
    events = replay.load(tmp_path / "busy.replay").events
    assert [e.channel for e in events] == ["clock"]
    assert not {repr(e.response) for e in events} & set(mine)


def test_uuid4_outside_every_run_reads_the_os_urandom_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside every run the patched uuid4 skips the patched os.urandom (one interceptor
    fewer) but still reads whatever os.urandom is: code that replaced it gets its bytes."""
    import os

    started = threading.Event()
    finish = threading.Event()

    def run() -> None:
        with replay.record(tmp_path / "busy.replay"):
            uuid.uuid4()
            started.set()
            finish.wait()

    t = threading.Thread(target=run)
    t.start()
    started.wait()
    try:
        assert _patch.installed()
        fresh = uuid.uuid4()
        assert fresh.version == 4 and fresh != uuid.uuid4()
        monkeypatch.setattr(os, "urandom", lambda n: b"\x11" * n)
        assert uuid.uuid4() == uuid.UUID(bytes=b"\x11" * 16, version=4)
        monkeypatch.undo()
    finally:
        finish.set()
        t.join()
    assert [e.channel for e in replay.load(tmp_path / "busy.replay").events] == ["uuid"]
