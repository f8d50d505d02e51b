"""Divergence blame on value channels: a read is told apart by its call site.

Clock, random and uuid requests carry no arguments (``{"fn": "random"}``), so
the request alone cannot say which read of the recording a read under replay
is. Without the call site, an extra ``random()`` takes the value recorded for
the next read and the run is blamed later, at a legitimate call. The agent
below is written to a file so that a second copy of it can run from another
path: line numbers stay put, and a fault is switched on by an argument.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import replay
from replay import Grade
from replay._capture.matcher import Matcher
from replay._cassette.events import CallSite, Event

AGENT = '''\
import asyncio
import random
import time


def agent(extra=False, drop=False):
    out = []
    if extra:
        out.append(random.random())     # line 9: a read inserted by a code change
    out.append(random.random())         # line 10
    if not drop:
        out.append(time.time())         # line 12: a read a code change drops
    out.append(time.time())             # line 13
    out.append(random.random())         # line 14
    return out


async def worker(name, extra=False, wait=None, then=None):
    if wait is not None:
        await wait.wait()
    if extra:
        random.random()                 # line 22
    value = random.random()             # line 23
    if then is not None:
        then.set()
    return name, value, time.time()


async def parallel(extra=False, b_first=False):
    gate = asyncio.Event() if b_first else None
    return await asyncio.gather(worker("a", wait=gate),
                                worker("b", extra, then=gate))
'''


def _load(directory: Path) -> ModuleType:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "blame_agent.py"
    path.write_text(AGENT)
    name = f"blame_agent_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def recorded(tmp_path: Path) -> tuple[ModuleType, Path]:
    """The agent, and a cassette of its fault-free run."""
    agent = _load(tmp_path / "src")
    path = tmp_path / "blame.replay"
    with replay.record(path):
        agent.agent()
    return agent, path


def _events(path: Path, channel: str) -> list[Event]:
    return sorted((e for e in replay.load(path).events if e.channel == channel),
                  key=lambda e: e.seq)


def _diverge(path: Path, fn: Callable[..., object], **kwargs: object) -> replay.Divergence:
    with pytest.raises(replay.DivergenceError) as info:
        with replay.play(path, unused="fail"):
            fn(**kwargs)
    return info.value.divergence


def test_an_inserted_read_is_extra_at_its_own_site(recorded: tuple[ModuleType, Path]
                                                    ) -> None:
    agent, path = recorded
    div = _diverge(path, agent.agent, extra=True)
    first = _events(path, "random")[0]
    assert div.grade is Grade.EXTRA and div.channel == "random"
    assert div.seq == first.seq  # the read the run was due to make, not a later one
    assert div.actual_site is not None and div.actual_site.line == 9
    assert div.expected is not None and div.expected.site is not None
    assert div.expected.site.line == 10
    assert div.other_site
    report = div.report()
    assert "blame_agent.py:9 in agent" in report and "blame_agent.py:10 in agent" in report
    assert "another call site" in report
    # nothing in the report says the legitimate read at line 10 was the one asked
    assert "asked at " + str(first.site) not in report


def test_a_dropped_read_is_missing_at_its_own_site(recorded: tuple[ModuleType, Path]
                                                   ) -> None:
    agent, path = recorded
    div = _diverge(path, agent.agent, drop=True)
    dropped, kept = _events(path, "clock")
    assert div.grade is Grade.MISSING and div.channel == "clock"
    assert div.seq == dropped.seq and [e.seq for e in div.skipped] == [dropped.seq]
    assert div.instead is not None and div.instead.seq == kept.seq
    assert div.expected is not None and div.expected.site is not None
    assert div.expected.site.line == 12
    assert div.next_site is not None and div.next_site.line == 14
    report = div.report()
    assert "extra call not in the recording" not in report
    assert "recorded call(s) skipped" in report
    assert "blame_agent.py:12 in agent" in report and "blame_agent.py:13 in agent" in report


def test_the_same_program_replays_clean_from_another_path(
        recorded: tuple[ModuleType, Path], tmp_path: Path) -> None:
    agent, path = recorded
    with replay.play(path, unused="fail") as run:
        agent.agent()
    assert run.result is not None and run.result.ok
    # An identical copy at another path (another checkout) still matches...
    copy = _load(tmp_path / "elsewhere" / "checkout")
    assert copy.__file__ != agent.__file__
    with replay.play(path, unused="fail") as run:
        copy.agent()
    assert run.result is not None and run.result.ok and run.result.grade is None
    # ...by its sites, not by luck: an extra read there is still caught where it is.
    div = _diverge(path, copy.agent, extra=True)
    assert div.grade is Grade.EXTRA and div.seq == _events(path, "random")[0].seq
    assert div.actual_site is not None and div.actual_site.file == copy.__file__


def test_parallel_tasks_replay_clean_and_blame_their_own_task(tmp_path: Path) -> None:
    agent = _load(tmp_path / "src")
    path = tmp_path / "par.replay"
    with replay.record(path):
        recorded = asyncio.run(agent.parallel())
    for b_first in (False, True):  # the tasks run in another order
        with replay.play(path, unused="fail") as run:
            again = asyncio.run(agent.parallel(b_first=b_first))
        assert run.result is not None and run.result.ok
        assert again == recorded and (run.result.reordered > 0) == b_first
    div = _diverge(path, lambda: asyncio.run(agent.parallel(extra=True)))
    b_reads = [e for e in _events(path, "random") if e.task == div.task]
    assert div.grade is Grade.EXTRA and div.seq == b_reads[0].seq
    assert div.actual_site is not None and div.actual_site.line == 22
    assert div.expected is not None and div.expected.site is not None
    assert div.expected.site.line == 23
    assert div.task.endswith("#1")  # task "b", the second created


# -- the rule on the matcher itself ----------------------------------------------------
def _read(seq: int, site: CallSite | None, channel: str = "random") -> Event:
    return Event(seq=seq, channel=channel, request={"fn": "random"}, response=seq / 10,
                 task="main", site=site)


def _at(line: int, file: str = "/one/checkout/agent.py") -> CallSite:
    return CallSite(file, line, "run")


def test_the_site_key_ignores_the_checkout_path() -> None:
    from replay._capture.matcher import site_key
    assert site_key(_at(3)) == site_key(_at(3, "/another/place/agent.py"))
    assert site_key(_at(3)) == site_key(_at(3, "C:\\work\\my_agent.py"))
    assert site_key(_at(3)) != site_key(_at(4))
    assert site_key(_at(3)) != site_key(CallSite("/one/checkout/agent.py", 3, "other"))
    assert site_key(None) is None


def test_reads_made_in_another_order_are_swapped() -> None:
    m = Matcher([_read(0, _at(1)), _read(1, _at(2)), _read(2, _at(3))])
    assert m.match("main", "random", {"fn": "random"}, _at(2)) == _read(1, _at(2))
    div = m.match("main", "random", {"fn": "random"}, _at(1))  # came back for the skipped
    assert isinstance(div, replay.Divergence) and div.grade is Grade.SWAPPED
    assert div.seq == 0 and div.other_site


def test_a_skipped_read_is_not_answered_by_a_read_elsewhere() -> None:
    """After a skip, a read at a third site is not "coming back" for the skipped one."""
    m = Matcher([_read(0, _at(1)), _read(1, _at(2)), _read(2, _at(3))])
    assert m.match("main", "random", {"fn": "random"}, _at(2)) == _read(1, _at(2))
    div = m.match("main", "random", {"fn": "random"}, _at(3))
    assert isinstance(div, replay.Divergence) and div.grade is Grade.MISSING
    assert div.seq == 0 and div.next_site == _at(3)


def test_reads_without_sites_match_on_their_request() -> None:
    """Guard: no site on either side (old cassettes) is no evidence of anything."""
    m = Matcher([_read(0, None), _read(1, _at(2))])
    assert m.match("main", "random", {"fn": "random"}, _at(7)) == _read(0, None)
    assert m.match("main", "random", {"fn": "random"}, None) == _read(1, _at(2))


def test_a_custom_request_matcher_decides_alone() -> None:
    """Guard: drift's matcher accepts whatever is asked; a moved read is no divergence."""
    m = Matcher([_read(0, _at(1))])
    m.set_matcher("random", lambda recorded, actual: True)
    assert m.match("main", "random", {"fn": "random"}, _at(5)) == _read(0, _at(1))
