"""Recording is invisible: a program sees the same types and behaviour with and
without agent-replay (issue 14, root cause 2).

``fixtures/transparency/probe.py`` prints what a program can observe of every
type and function the recorder patches (identity, subclassing with a
metaclass, pickling, copying, ``isinstance`` from C extensions, pydantic v1 and
v2, and numpy, pandas, langchain-core and mcp where installed). Its output is
the same plain, under ``replay record`` and under ``replay play``.
"""

from __future__ import annotations

import datetime
import os
import pickle
import subprocess
import sys
from pathlib import Path

import replay

ROOT = Path(__file__).resolve().parent.parent
PROBE = ["python", "-m", "fixtures.transparency.probe"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(list(args), capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=180)


def test_probe_prints_the_same_plain_recorded_and_replayed(tmp_path: Path) -> None:
    plain = _run(sys.executable, *PROBE[1:])
    assert plain.returncode == 0, plain.stderr
    cassette = str(tmp_path / "probe.replay")
    rec = _run(sys.executable, "-m", "replay._cli", "record", "-o", cassette, "--", *PROBE)
    assert rec.returncode == 0, rec.stderr
    assert rec.stdout == plain.stdout
    for _ in range(2):
        play = _run(sys.executable, "-m", "replay._cli", "play", cassette, "--unused", "fail",
                    "--", *PROBE)
        assert play.returncode == 0, play.stderr
        assert play.stdout == plain.stdout
    assert "pydantic.v1 condate: 2024-01-02" in plain.stdout


class _Meta(type):
    pass


def test_datetime_classes_stay_the_real_ones_in_process(tmp_path: Path) -> None:
    real = (datetime.datetime, datetime.date)
    path = tmp_path / "dt.replay"
    seen = []
    for run in (replay.record, replay.play):
        with run(path):
            assert (datetime.datetime, datetime.date) == real
            now = datetime.datetime.now()
            assert type(now) is datetime.datetime
            seen.append((now, datetime.date.today(), datetime.datetime.now(datetime.UTC)))

            class D(datetime.date, metaclass=_Meta):
                pass

            assert type(D(2024, 1, 2)) is D
            assert pickle.loads(pickle.dumps(now)) == now
    assert seen[0] == seen[1]  # replay answered the recorded times
    assert vars(datetime.datetime)["now"] is not None and datetime.datetime.now.__self__ is (
        datetime.datetime)


def test_a_subclass_asking_for_now_gets_an_instance_of_itself(tmp_path: Path) -> None:
    class Stamp(datetime.datetime):
        pass

    def now() -> Stamp:  # one call site in both runs
        return Stamp.now()

    path = tmp_path / "sub.replay"
    with replay.record(path):
        recorded = now()
    with replay.play(path):
        replayed = now()
    assert type(recorded) is Stamp and type(replayed) is Stamp and replayed == recorded


def test_set_order_is_the_recorded_one(tmp_path: Path) -> None:
    """String hashes are salted per process: ``replay record`` fixes the child's
    PYTHONHASHSEED and ``replay play`` gives the child the recorded one."""
    program = tmp_path / "sets.py"
    program.write_text("print(list({f'name-{i}' for i in range(40)}))\n")
    cassette = str(tmp_path / "sets.replay")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    env["PYTHONPATH"] = str(ROOT)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "replay._cli", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)

    rec = cli("record", "-o", cassette, "--", "python", str(program))
    assert rec.returncode == 0, rec.stderr
    assert replay.read_header(cassette).meta["hashseed"]
    for _ in range(3):
        play = cli("play", cassette, "--", "python", str(program))
        assert play.returncode == 0, play.stderr
        assert play.stdout == rec.stdout
