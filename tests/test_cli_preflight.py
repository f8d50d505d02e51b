"""Fail before the program starts (issue 12): paths are checked before anything runs.

``replay record/play/fork/drift -- PROGRAM`` check the cassette and the output
before the child starts, and a child whose session cannot start exits before
the program's first line. Every command words a missing file, a crashed
recording's ``.partial`` and a directory the same way. The program in these
tests writes a marker file as its first action: if the marker exists, the
program ran.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import crc32c
import pytest

import replay
from replay import _cli
from replay._cassette import read_header

if TYPE_CHECKING:
    from replay._runs.preflight import Problem

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
REPLAY = [sys.executable, "-m", "replay._cli"]
BOOT = ROOT / "replay" / "_boot"
FIRST_LINE = "the program's first line ran"

PROGRAM = f"""\
import pathlib, random, sys
pathlib.Path(sys.argv[1]).write_text("ran")
print({FIRST_LINE!r}, flush=True)
print(random.random())
"""


def cli(*args: str | Path, cwd: Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([*REPLAY, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full, timeout=120)


def program(tmp: Path) -> tuple[list[str], Path]:
    """``python agent.py MARKER`` and the marker it writes first thing."""
    script = tmp / "agent.py"
    script.write_text(PROGRAM)
    marker = tmp / "marker"
    return ["python", str(script), str(marker)], marker


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    """A good cassette (of one random number)."""
    out = tmp_path / "good.replay"
    with replay.record(out):
        random.random()
    return out


def header_size(path: Path) -> int:
    data = path.read_bytes()
    return 14 + struct.unpack("<8sHI", data[:14])[2] + 4


def assert_not_run(res: subprocess.CompletedProcess[str], marker: Path, line: str) -> None:
    """Exit 2 with exactly ``replay: line``, and the program never started."""
    assert not marker.exists(), f"the program ran:\n{res.stdout}\n{res.stderr}"
    assert FIRST_LINE not in res.stdout
    assert res.returncode == 2, res.stderr
    assert res.stderr == f"replay: {line}\n"


# -- 1. record/play/fork/drift check before the child starts ------------------------------

def test_play_of_a_missing_cassette_never_starts_the_program(tmp_path: Path) -> None:
    argv, marker = program(tmp_path)
    res = cli("play", "nope.replay", "--", *argv, cwd=tmp_path)
    assert_not_run(res, marker, "no such cassette: nope.replay")


def test_record_into_a_missing_directory_never_starts_the_program(tmp_path: Path) -> None:
    argv, marker = program(tmp_path)
    res = cli("record", "-o", "no/such/dir/x.replay", "--", *argv, cwd=tmp_path)
    assert_not_run(res, marker,
                   "cannot write no/such/dir/x.replay: the directory no/such/dir does not exist")
    assert not list(tmp_path.rglob("*.partial"))


def test_record_onto_a_directory_never_starts_the_program(tmp_path: Path) -> None:
    argv, marker = program(tmp_path)
    (tmp_path / "d.replay").mkdir()
    res = cli("record", "-o", "d.replay", "--", *argv, cwd=tmp_path)
    assert_not_run(res, marker, "cannot write d.replay: it is a directory")


@pytest.mark.parametrize("kind", ["directory", "text", "empty", "bad header CRC",
                                  "newer version"])
def test_play_of_something_that_is_not_a_cassette_never_starts_the_program(
        tmp_path: Path, recorded: Path, kind: str) -> None:
    argv, marker = program(tmp_path)
    target = tmp_path / "x.replay"
    data = bytearray(recorded.read_bytes())
    if kind == "directory":
        target.mkdir()
        line = "x.replay is a directory, not a cassette"
    elif kind == "text":
        target.write_text("hello\n")
        line = "x.replay is not a cassette (it does not start with AGTRPLAY)"
    elif kind == "empty":
        target.write_bytes(b"")
        line = "x.replay is empty, not a cassette"
    elif kind == "bad header CRC":
        data[20] ^= 0x01
        target.write_bytes(bytes(data))
        line = "x.replay has a damaged header (corrupt at offset "
    else:  # version 99 with a header CRC that matches it
        data[8:10] = struct.pack("<H", 99)
        end = header_size(recorded) - 4
        data[end:end + 4] = struct.pack("<I", crc32c.crc32c(bytes(data[14:end]),
                                                            crc32c.crc32c(bytes(data[8:14]))))
        target.write_bytes(bytes(data))
        line = "x.replay needs a newer agent-replay (format version 99"
    res = cli("play", "x.replay", "--", *argv, cwd=tmp_path)
    assert not marker.exists() and FIRST_LINE not in res.stdout
    assert res.returncode == 2
    assert res.stderr.startswith(f"replay: {line}") and res.stderr.count("\n") == 1, res.stderr


def test_play_in_a_recording_mode_checks_where_it_writes(tmp_path: Path, recorded: Path
                                                         ) -> None:
    argv, marker = program(tmp_path)
    res = cli("play", "nope.replay", "--mode", "auto", "-o", "gone/x.replay", "--", *argv,
              cwd=tmp_path)
    assert_not_run(res, marker, "cannot write gone/x.replay: the directory gone does not exist")
    res = cli("play", recorded, "--live", "-o", "gone/y.replay", "--", *argv, cwd=tmp_path)
    assert_not_run(res, marker, "cannot write gone/y.replay: the directory gone does not exist")


def test_fork_checks_its_parent_and_its_output_before_starting(tmp_path: Path,
                                                               recorded: Path) -> None:
    argv, marker = program(tmp_path)
    res = cli("fork", "nope.replay", "--at", "0", "-o", "f.replay", "--", *argv, cwd=tmp_path)
    assert_not_run(res, marker, "no such cassette: nope.replay")
    res = cli("fork", recorded, "--at", "0", "-o", "gone/f.replay", "--", *argv, cwd=tmp_path)
    assert_not_run(res, marker, "cannot write gone/f.replay: the directory gone does not exist")


def test_drift_with_a_program_checks_the_cassette_before_starting(tmp_path: Path) -> None:
    argv, marker = program(tmp_path)
    (tmp_path / "t.replay").write_text("not a cassette")
    res = cli("drift", "nope.replay", "--", *argv, cwd=tmp_path)
    assert_not_run(res, marker, "no such cassette: nope.replay")
    res = cli("drift", "t.replay", "--", *argv, cwd=tmp_path)
    assert_not_run(res, marker, "t.replay is not a cassette (it does not start with AGTRPLAY)")


def test_a_program_that_records_nothing_is_not_said_to_have_left_a_partial(
        tmp_path: Path) -> None:
    sh = shutil.which("sh")
    assert sh is not None
    res = cli("record", "-o", "x.replay", "--", sh, "-c", "exit 0", cwd=tmp_path)
    assert res.returncode == 1
    assert "recorded nothing" in res.stderr and "replay verify" not in res.stderr


# -- 1b. inside the child: a session that cannot start stops the program ------------------

def test_a_cassette_damaged_past_its_header_stops_the_child_before_the_program(
        tmp_path: Path, recorded: Path) -> None:
    """The parent's check reads only the header; the child reads the rest and refuses."""
    argv, marker = program(tmp_path)
    cut = tmp_path / "cut.replay"
    cut.write_bytes(recorded.read_bytes()[:header_size(recorded) + 10])
    read_header(cut)  # intact: the parent's check, which reads only the header, passes
    res = cli("play", "cut.replay", "--", *argv, cwd=tmp_path)
    assert not marker.exists() and FIRST_LINE not in res.stdout
    assert res.returncode == 2
    assert res.stderr.startswith("replay: the program was not run: the replay session did "
                                 "not start: ") and "truncated" in res.stderr
    assert res.stderr.count("\n") == 1, res.stderr


def test_a_cassette_removed_after_the_check_stops_the_child_before_the_program(
        tmp_path: Path, recorded: Path) -> None:
    """Removed between the parent's check and the child's read (by a wrapper script)."""
    argv, marker = program(tmp_path)
    sh = shutil.which("sh")
    assert sh is not None
    wrapper = f'rm "{recorded}"; exec "{sys.executable}" "{argv[1]}" "{marker}"'
    res = cli("play", recorded, "--", sh, "-c", wrapper, cwd=tmp_path)
    assert not recorded.exists()
    assert not marker.exists() and FIRST_LINE not in res.stdout
    assert res.returncode == 2
    assert res.stderr == (f"replay: the program was not run: the replay session did not "
                          f"start: no such cassette: {recorded}\n")


@pytest.mark.parametrize("spec", [
    {"mode": "replay", "cassette": "/no/such/dir/x.replay"},
    {"mode": "record", "cassette": "/no/such/dir/x.replay"},
    {"mode": "new-events", "cassette": "/no/such/dir/x.replay", "at": 3,
     "output": "/no/such/dir/y.replay"},
    {"mode": "bogus", "cassette": "x.replay"},
    "not JSON at all",
], ids=["replay-missing", "record-bad-dir", "fork-missing", "bad-mode", "bad-json"])
def test_a_boot_spec_that_cannot_start_a_session_never_runs_the_program(
        tmp_path: Path, spec: object) -> None:
    argv, marker = program(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(BOOT), str(ROOT)]),
               AGENT_REPLAY_BOOT=spec if isinstance(spec, str) else json.dumps(spec))
    res = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=60)
    assert not marker.exists() and FIRST_LINE not in res.stdout
    assert res.returncode == 70
    assert res.stderr.startswith("agent-replay: ") and "session did not start" in res.stderr
    assert res.stderr.endswith("; the program was not run\n") and res.stderr.count("\n") == 1


def test_a_boot_failure_reports_to_the_parent_result_file(tmp_path: Path) -> None:
    argv, marker = program(tmp_path)
    result = tmp_path / "result.json"
    result.write_text("")
    spec = {"mode": "record", "cassette": str(tmp_path / "gone" / "x.replay"),
            "result": str(result)}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(BOOT), str(ROOT)]),
               AGENT_REPLAY_BOOT=json.dumps(spec))
    res = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=60)
    assert not marker.exists() and res.returncode == 70 and res.stderr == ""
    assert json.loads(result.read_text()) == {"boot_error": (
        f"the record session did not start: cannot write {tmp_path / 'gone' / 'x.replay'}: "
        f"the directory {tmp_path / 'gone'} does not exist")}


# -- 2. one wording for a missing file, a crashed recording and a directory ---------------

COMMANDS: dict[str, Sequence[str]] = {
    "show": ["show", "X"],
    "verify": ["verify", "X"],
    "diff": ["diff", "X", "OTHER"],
    "diff-right": ["diff", "OTHER", "X"],
    "tui": ["tui", "X"],
    "play": ["play", "X", "--", "PROGRAM"],
    "drift": ["drift", "X"],
    "fork": ["fork", "X", "--at", "0", "-o", "new.replay", "--", "PROGRAM"],
    "edit": ["edit", "X", "--event", "0", "--set", "a=1", "-o", "new.replay"],
    "scan": ["scan", "X"],
}


def run_everywhere(tmp: Path, other: Path, name: str, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[int, str]]:
    """Every command on ``name`` in ``tmp``, in this process (the same ``main`` as the
    console script): exit code and stderr by command."""
    argv, _ = program(tmp)
    monkeypatch.chdir(tmp)
    out: dict[str, tuple[int, str]] = {}
    for command, words in COMMANDS.items():
        args: list[str] = []
        for w in words:
            args += argv if w == "PROGRAM" else [name if w == "X" else
                                                 str(other) if w == "OTHER" else w]
        capsys.readouterr()
        code = _cli.main(args)
        out[command] = (code, capsys.readouterr().err)
    return out


def test_a_crashed_recording_is_pointed_at_the_same_way_by_every_command(
        tmp_path: Path, recorded: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    dies = tmp_path / "dies.py"
    dies.write_text("import os, random, signal\nrandom.random()\n"
                    "os.kill(os.getpid(), signal.SIGKILL)\n")
    crashed = cli("record", "-o", "run.replay", "--", "python", dies, cwd=tmp_path)
    assert "SIGKILL" in crashed.stderr and (tmp_path / "run.replay.partial").exists()
    line = ("replay: no such cassette: run.replay; a crashed recording left "
            "run.replay.partial: replay show run.replay.partial\n")
    results = run_everywhere(tmp_path, recorded, "run.replay", capsys, monkeypatch)
    for command, res in results.items():
        assert res == (2, line), command
    assert not (tmp_path / "marker").exists() and not (tmp_path / "new.replay").exists()
    shown = cli("show", "run.replay.partial", cwd=tmp_path)  # and the hint works
    assert shown.returncode == 1 and "random" in shown.stdout and "damaged" in shown.stderr


def test_a_missing_file_is_worded_the_same_by_every_command(
        tmp_path: Path, recorded: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    results = run_everywhere(tmp_path, recorded, "nope.replay", capsys, monkeypatch)
    for command, res in results.items():
        assert res == (2, "replay: no such cassette: nope.replay\n"), command
    assert not (tmp_path / "marker").exists()


def test_a_directory_is_not_reported_as_a_missing_cassette(
        tmp_path: Path, recorded: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dir.replay").mkdir()
    results = run_everywhere(tmp_path, recorded, "dir.replay", capsys, monkeypatch)
    for command, res in results.items():
        assert res == (2, "replay: dir.replay is a directory, not a cassette\n"), command
    assert not (tmp_path / "marker").exists()


def test_import_vcr_checks_its_input_and_its_output(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("interactions: []\nversion: 1\n")
    res = cli("import-vcr", "nope.yaml", "-o", "x.replay", cwd=tmp_path)
    assert (res.returncode, res.stderr) == (2, "replay: no such cassette: nope.yaml\n")
    res = cli("import-vcr", "x.yaml", "-o", "gone/x.replay", cwd=tmp_path)
    assert (res.returncode, res.stderr) == (
        2, "replay: cannot write gone/x.replay: the directory gone does not exist\n")


# -- the checks themselves -----------------------------------------------------------------

def kind(problem: Problem | None) -> str | None:
    return problem.kind if problem is not None else None


def test_run_problem_resolves_the_mode_as_a_run_does(tmp_path: Path, recorded: Path) -> None:
    from replay._runs.preflight import cassette_problem, output_problem, run_problem
    gone = tmp_path / "gone.replay"
    assert kind(run_problem("replay", gone)) == "missing"
    assert kind(run_problem("auto", gone)) is None  # records it
    assert kind(run_problem("new-events", gone)) is None  # records it
    assert kind(run_problem("new-events", gone, at=2)) == "missing"  # a fork needs its parent
    assert kind(run_problem("record", gone)) is None
    assert run_problem("auto", recorded) is None and run_problem("replay", recorded) is None
    bad_out = tmp_path / "no" / "x.replay"
    assert kind(run_problem("new-events", recorded, output=bad_out)) == "no directory"
    assert run_problem("replay", recorded, output=bad_out) is None  # strict replay writes nothing
    assert output_problem(tmp_path / "ok.replay") is None
    (tmp_path / "ok.replay.partial").mkdir()
    assert kind(output_problem(tmp_path / "ok.replay")) == "directory"
    assert kind(cassette_problem(tmp_path / "x.yaml", header=False)) == "missing"
    assert str(run_problem("replay", gone, label="s.replay")) == "no such cassette: s.replay"


# -- the pytest plugin ------------------------------------------------------------------------

PYTEST_TEST = '''
import pathlib, random
import pytest

@pytest.mark.replay
def test_weather(replay_run):
    pathlib.Path("body-ran").write_text("yes")
    random.random()
'''

QUIET = ("-p", "no:textual-snapshot", "-W", "ignore::pytest.PytestAssertRewriteWarning",
         "-o", "asyncio_default_fixture_loop_scope=function")


@pytest.mark.parametrize("kind", ["directory", "not a cassette", "crashed"])
def test_the_pytest_plugin_refuses_an_unusable_cassette_in_one_line(
        pytester: pytest.Pytester, recorded: Path, kind: str) -> None:
    pytester.makepyfile(test_agent=textwrap.dedent(PYTEST_TEST))
    where = pytester.path / "cassettes" / "test_agent"
    where.mkdir(parents=True)
    cassette = where / "test_weather.replay"
    if kind == "directory":
        cassette.mkdir()
        want = ["cassettes/test_agent/test_weather.replay is a directory, not a cassette"]
    elif kind == "not a cassette":
        cassette.write_text("junk")
        want = ["cassettes/test_agent/test_weather.replay is not a cassette (it does not "
                "start with AGTRPLAY); record it with:",
                "  pytest --replay-mode=record test_agent.py::test_weather"]
    else:
        shutil.copy(recorded, str(cassette) + ".partial")
        want = ["no cassette for this test at cassettes/test_agent/test_weather.replay (a "
                "crashed recording left cassettes/test_agent/test_weather.replay.partial); "
                "record it with:"]
    result = pytester.runpytest_inprocess(*QUIET)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(want)
    out = result.stdout.str()
    assert "Traceback" not in out and "IsADirectoryError" not in out
    assert "CassetteCorruptError" not in out
    assert not (pytester.path / "body-ran").exists()


def test_the_python_api_refuses_a_bad_path_before_the_agent_runs(tmp_path: Path) -> None:
    """``replay.play``/``replay.record`` check paths as the CLI does: a documented
    error before the block runs, never a raw OSError after the agent ran."""
    ran: list[str] = []
    folder = tmp_path / "runs"
    folder.mkdir()
    cases = [
        (replay.play, tmp_path / "none.replay", "no such cassette"),
        (replay.play, folder, "is a directory, not a cassette"),
        (replay.record, folder, "it is a directory"),
        (replay.record, tmp_path / "gone" / "x.replay", "does not exist"),
    ]
    for opener, path, words in cases:
        with pytest.raises(replay.SessionError, match=words), opener(path):
            ran.append(str(path))
    assert ran == []
    assert not (tmp_path / "runs.partial").exists()
