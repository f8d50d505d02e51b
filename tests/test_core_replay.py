"""Record once, replay many times: the core engine's promises."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import random
import time
import uuid
from pathlib import Path

import pytest

import replay
from fixtures.agents import core_agent


def test_replays_are_identical_to_the_recording(tmp_path: Path) -> None:
    path = tmp_path / "core.replay"
    with replay.record(path):
        recorded = core_agent.run("Paris", 0.02)
    transcripts = []
    for _ in range(20):
        with replay.play(path, unused="fail") as run:
            transcripts.append(core_agent.run("Paris", 0.02))
        assert run.result is not None and run.result.ok
    assert all(t == recorded for t in transcripts)
    live_a = core_agent.run("Paris", 0.0)
    live_b = core_agent.run("Paris", 0.0)
    assert live_a != live_b
    assert live_a != recorded


def test_replay_skips_sleeps(tmp_path: Path) -> None:
    path = tmp_path / "sleepy.replay"
    with replay.record(path):
        t0 = time.perf_counter()
        recorded = core_agent.run("Paris", 5.0)
        assert time.perf_counter() - t0 >= 5.0
    t0 = time.perf_counter()
    with replay.play(path):
        again = core_agent.run("Paris", 5.0)
    assert time.perf_counter() - t0 < 0.5
    assert again == recorded
    sleeps = [e for e in replay.load(path).events if e.channel == "sleep"]
    assert len(sleeps) == 4 and all(e.request["seconds"] == 1.25 for e in sleeps)  # type: ignore[index]


def test_changed_tool_argument_raises_divergence(tmp_path: Path) -> None:
    path = tmp_path / "div.replay"
    with replay.record(path):
        core_agent.run("Paris", 0.0)
    weather = next(e for e in replay.load(path).events if e.channel == "tool:get_weather")
    with pytest.raises(replay.DivergenceError) as info:
        with replay.play(path, unused="ignore"):
            core_agent.run("Lyon", 0.0)
    msg = str(info.value)
    assert f"event #{weather.seq}" in msg
    assert "'tool:get_weather'" in msg
    assert "args.city: 'Paris' -> 'Lyon'" in msg
    assert "core_agent.py" in msg  # both call sites
    div = info.value.divergence
    assert div.grade is replay.Grade.CHANGED
    assert div.seq == weather.seq
    assert [c.path for c in div.changes] == ["args.city"]


def test_patches_leave_nothing_behind(tmp_path: Path) -> None:
    def current() -> tuple[object, ...]:
        return (time.time, time.time_ns, time.sleep, random.random, random.getrandbits,
                uuid.uuid4, uuid.uuid1, os.urandom, datetime.datetime, datetime.date,
                asyncio.sleep, random.Random.seed, vars(datetime.datetime)["now"],
                vars(datetime.datetime)["utcnow"], vars(datetime.date)["today"])
    originals = current()
    with replay.record(tmp_path / "x.replay"):
        assert time.time is not originals[0]
        assert datetime.datetime is originals[8]  # the real class, its methods patched
        assert vars(datetime.datetime)["now"] is not originals[12]
        time.time()
    after = current()
    assert all(a is b for a, b in zip(originals, after, strict=True))
    assert "random" not in vars(random._inst)  # type: ignore[attr-defined]
    assert core_agent.datetime.datetime is originals[8]


calls = {"n": 0}


@replay.tool
def side_effect(x: int) -> int:
    calls["n"] += 1
    if x < 0:
        raise ValueError(f"negative: {x}")
    return x * 2


def test_tools_are_not_run_on_replay_and_errors_reraise(tmp_path: Path) -> None:
    path = tmp_path / "tools.replay"
    with replay.record(path):
        assert side_effect(2) == 4
        with pytest.raises(ValueError, match="negative: -1"):
            side_effect(-1)
    assert calls["n"] == 2
    with replay.play(path):
        assert side_effect(2) == 4
        with pytest.raises(ValueError, match="negative: -1") as info:
            side_effect(-1)
    assert calls["n"] == 2
    assert any("[agent-replay] replayed from event" in n for n in info.value.__notes__)


@dataclasses.dataclass
class Order:
    id: str
    total: float


@replay.tool
def fetch_order(order_id: str) -> Order:
    return Order(order_id, random.uniform(1, 100))


def test_dataclass_results_are_rebuilt_from_the_annotation(tmp_path: Path) -> None:
    path = tmp_path / "dc.replay"
    with replay.record(path):
        first = fetch_order("A1")
    with replay.play(path):
        again = fetch_order("A1")
    assert again == first and isinstance(again, Order)


class Opaque:
    pass


@replay.tool
def opaque() -> Opaque:
    return Opaque()


def test_unrecordable_result_fails_at_record_time(tmp_path: Path) -> None:
    with pytest.raises(replay.UnrecordableValueError, match="Opaque"):
        with replay.record(tmp_path / "o.replay"):
            opaque()


def test_capture_and_nested_events(tmp_path: Path) -> None:
    path = tmp_path / "cap.replay"

    def read_db(key: str) -> dict[str, object]:
        return {"key": key, "at": time.time(), "v": random.random()}

    read = replay.capture(read_db, name="db.read")
    with replay.record(path):
        first = read("k")
    events = replay.load(path).events
    outer = next(e for e in events if e.channel == "capture:db.read")
    inner = [e for e in events if e.parent == outer.seq]
    assert {e.channel for e in inner} == {"clock", "random"}
    with replay.play(path, unused="fail") as run:
        assert read("k") == first
    assert run.result is not None and run.result.consumed == 1


def test_unconsumed_events_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "un.replay"
    def now() -> float:  # one call site: a clock read is told apart by where it is
        return time.time()

    with replay.record(path):
        now()
        uuid.uuid4()
    with pytest.warns(replay.UnconsumedWarning, match="never asked for"):
        with replay.play(path) as run:
            now()
    assert run.result is not None
    assert [e.channel for e in run.result.unconsumed] == ["uuid"]
    with pytest.raises(replay.DivergenceError, match="recorded events never asked for"):
        with replay.play(path, unused="fail"):
            now()


def test_divergence_swallowed_by_the_agent_still_fails_the_run(tmp_path: Path) -> None:
    path = tmp_path / "sw.replay"
    with replay.record(path):
        side_effect(1)
    with pytest.raises(replay.DivergenceError):
        with replay.play(path, unused="ignore") as run:
            try:
                side_effect(5)
            except Exception:
                pass  # an agent that retries on any error
    assert run.result is not None and len(run.result.divergences) == 1


async def _async_agent() -> list[object]:
    await asyncio.sleep(2.0)
    out: list[object] = [time.time(), str(uuid.uuid4())]
    results = await asyncio.gather(*(_async_tool(i) for i in range(4)))
    out.extend(results)
    return out


@replay.tool
async def _async_tool(i: int) -> float:
    await asyncio.sleep(random.random() / 50)
    return random.random() + i


async def test_async_record_and_replay_with_decorators(tmp_path: Path) -> None:
    path = tmp_path / "async.replay"
    recorded = await replay.record(path)(_async_agent)()
    t0 = time.perf_counter()
    again = await replay.play(path, unused="fail")(_async_agent)()
    assert time.perf_counter() - t0 < 1.0  # recorded: slept 2 s
    assert again == recorded
    tasks = {e.task for e in replay.load(path).events if e.channel == "tool:_async_tool"}
    assert len(tasks) == 4 and all(t.startswith("main/") for t in tasks)


def test_datetime_reads_are_replayed_in_the_callers_timezone(tmp_path: Path) -> None:
    path = tmp_path / "dt.replay"
    tz = datetime.timezone(datetime.timedelta(hours=5, minutes=30))

    def reads() -> tuple[object, ...]:  # the same call sites in both runs
        return (datetime.datetime.now(), datetime.datetime.now(tz),
                datetime.datetime.utcnow(), datetime.date.today(), time.strftime("%H:%M:%S"))

    with replay.record(path):
        first = reads()
    with replay.play(path):
        again = reads()
    assert again == first
    assert again[1].tzinfo is tz
    assert isinstance(again[0], datetime.datetime)


def test_sessions_do_not_nest(tmp_path: Path) -> None:
    with replay.record(tmp_path / "a.replay"):
        with pytest.raises(replay.SessionError, match="nested"):
            with replay.record(tmp_path / "b.replay"):
                pass


def test_missing_cassette_names_the_record_command(tmp_path: Path) -> None:
    with pytest.raises(replay.SessionError, match="replay record -o"):
        with replay.play(tmp_path / "none.replay"):
            pass


def test_record_mode_rejects_unknown_values() -> None:
    with pytest.raises(ValueError, match="record, replay, auto, new-events"):
        replay.RecordMode.parse("once")


def test_reads_made_while_a_library_module_is_imported_are_not_inputs(
        tmp_path: Path) -> None:
    # A lazily imported library that draws a uuid at import time would be asked
    # once while recording and never on replay (the process has it imported).
    pkg = tmp_path / "site-packages" / "lazylib"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("import uuid\nKEY = str(uuid.uuid4())\n")
    import sys

    from replay._capture import callsite as _callsite
    sys.path.insert(0, str(pkg.parent))
    _callsite._SITE = (*_callsite._SITE, str(pkg.parent) + os.sep)
    try:
        path = tmp_path / "lazy.replay"
        def key() -> str:  # one call site in both runs
            return str(uuid.uuid4())

        with replay.record(path):
            import lazylib  # noqa: F401
            first = key()
        assert [e.channel for e in replay.load(path).events] == ["uuid"]
        with replay.play(path, unused="fail"):
            assert key() == first
    finally:
        sys.path.remove(str(pkg.parent))
        sys.modules.pop("lazylib", None)
        _callsite._SITE = _callsite._SITE[:-1]
        _callsite._cache.clear()


@replay.tool
def big_number(bits: int) -> int:
    return random.getrandbits(bits) - (1 << (bits - 1))


def test_integers_beyond_64_bits_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "big.replay"

    def draws() -> tuple[object, ...]:  # the same call sites in both runs
        return ((big_number(200), random.getrandbits(128), -(2**90), big_number(64)),
                __import__("secrets").randbits(160))

    with replay.record(path):
        first = draws()
    with replay.play(path, unused="fail"):
        assert draws() == first


class NeedsContext(Exception):
    """An exception whose constructor needs more than a message (like aiohttp's)."""

    def __init__(self, key: object, os_error: OSError) -> None:
        self.key = key
        super().__init__(os_error.errno, os_error.strerror)

    def __str__(self) -> str:
        return f"cannot connect to {self.key.host}"  # type: ignore[attr-defined]


class _Key:
    host = "db.internal:5432"


@replay.tool
def connect_db() -> None:
    raise NeedsContext(_Key(), OSError(111, "refused"))


def test_exceptions_that_cannot_be_rebuilt_from_a_message_still_reraise(
        tmp_path: Path) -> None:
    path = tmp_path / "ctx.replay"
    with replay.record(path), pytest.raises(NeedsContext):
        connect_db()
    with replay.play(path), pytest.raises(NeedsContext, match=r"cannot connect to db\.internal"):
        connect_db()
