"""Factories that generated ``__init__`` methods captured before the session are recorded.

A dataclass (or attrs class) made at import, before ``replay.record``, holds the
unpatched ``datetime.now`` / ``time.time`` / ``uuid.uuid4`` / ``random.random``
as its ``default_factory``: without the rebind those reads were live, so the
replay printed other values than the recording. Fresh interpreters, real attrs.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = str(pathlib.Path(__file__).resolve().parents[1])

AGENT = '''
import dataclasses, datetime, functools, random, sys, time, uuid
import attrs
import replay


@dataclasses.dataclass
class Rec:
    at: datetime.datetime = dataclasses.field(default_factory=datetime.datetime.now)
    t: float = dataclasses.field(default_factory=time.time)
    u: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)
    r: float = dataclasses.field(default_factory=random.random)
    d: datetime.date = dataclasses.field(default_factory=datetime.date.today)
    z: datetime.datetime = dataclasses.field(  # a partial of a patched original
        default_factory=functools.partial(datetime.datetime.now, datetime.timezone.utc))


@attrs.define
class Att:
    at: datetime.datetime = attrs.field(factory=datetime.datetime.now)


mode, path = sys.argv[1:]
with (replay.record(path) if mode == "record" else replay.play(path)):
    print(Rec(), Att())
# after the session the classes hold the originals again
cells = [c.cell_contents for c in Rec.__init__.__closure__]
utc = [c.func for c in cells if isinstance(c, functools.partial)]
print(datetime.datetime.now in cells, time.time in cells, uuid.uuid4 in cells,
      utc == [datetime.datetime.now],
      type(Rec().at) is datetime.datetime, type(Att().at) is datetime.datetime)
'''


def _run(tmp: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(tmp / "agent.py"), *args], capture_output=True,
                          text=True, cwd=tmp, timeout=120,
                          env={"PYTHONPATH": ROOT, "PATH": "/usr/bin:/bin"})


def test_factories_bound_before_the_session_are_recorded_and_replayed(
        tmp_path: pathlib.Path) -> None:
    (tmp_path / "agent.py").write_text(AGENT)
    cassette = tmp_path / "run.replay"
    rec = _run(tmp_path, "record", str(cassette))
    assert rec.returncode == 0, rec.stderr
    assert rec.stdout.splitlines()[1] == "True True True True True True"
    check = (f"import replay; print(sorted(str(e.request.get('fn')) for e in "
             f"replay.read_cassette({str(cassette)!r}).events))")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(sorted(
        ["datetime.now", "datetime.now", "datetime.now", "time.time", "uuid4", "random",
         "date.today"]))
    for _ in range(2):
        play = _run(tmp_path, "play", str(cassette))
        assert play.returncode == 0, play.stderr
        assert play.stdout == rec.stdout  # the same objects, to the microsecond and the uuid


def test_the_scan_for_factories_does_not_load_lazy_proxies(tmp_path: pathlib.Path) -> None:
    """openai's module-level ``openai.beta``, ``openai.chat``... are lazy proxies whose
    ``__class__`` loads them (imports the resources, tries to build the default
    client): the scan of loaded modules at install looked at every global with
    ``isinstance(v, type)`` and loaded all of them, seconds of a worker's first run."""
    code = ("import sys, openai, replay\n"
            "before = 'openai.resources.beta.beta' in sys.modules\n"
            f"with replay.record({str(tmp_path / 'run.replay')!r}):\n"
            "    pass\n"
            "print(before, 'openai.resources.beta.beta' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, env={"PYTHONPATH": ROOT, "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
