"""``replay doctor``: record once, replay twice, report what does not repeat (issue 14)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def doctor(tmp_path: Path, source: str, *flags: str) -> subprocess.CompletedProcess[str]:
    program = tmp_path / "program.py"
    program.write_text(source)
    return subprocess.run([sys.executable, "-m", "replay._cli", "doctor", *flags, "--",
                           "python", str(program)], cwd=tmp_path, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)


def test_a_reproducible_program_has_no_findings(tmp_path: Path) -> None:
    res = doctor(tmp_path, "import time, uuid, random\n"
                           "print(uuid.uuid4(), time.time(), random.random())\n",
                 "--fail-on-findings")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "the run repeats exactly" in res.stdout


def test_an_uncaptured_source_is_found_and_fails_ci(tmp_path: Path) -> None:
    res = doctor(tmp_path, "import time, uuid\nprint('id', uuid.uuid4())\n"
                           "print('perf', time.perf_counter_ns())\n", "--fail-on-findings")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "output differs with every request answered from the recording" in res.stdout
    assert "-perf " in res.stdout and "+perf " in res.stdout
    assert "-id " not in res.stdout  # the uuid is captured: that line repeats
    without = doctor(tmp_path, "import time\nprint(time.perf_counter_ns())\n")
    assert without.returncode == 0 and "finding(s)" in without.stdout


def test_a_divergence_is_reported_with_its_call_site(tmp_path: Path) -> None:
    counter = tmp_path / "runs.txt"
    source = (f"import pathlib, uuid, time\np = pathlib.Path({str(counter)!r})\n"
              "n = int(p.read_text()) if p.exists() else 0\np.write_text(str(n + 1))\n"
              "print(time.time() if n == 0 else uuid.uuid4())\n")
    res = doctor(tmp_path, source, "--fail-on-findings")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "divergence:" in res.stdout and "program.py" in res.stdout


def test_lines_printed_in_another_order_are_told_apart_from_an_uncaptured_input(
        tmp_path: Path) -> None:
    """Two worker threads print as they finish (CrewAI's event bus, smolagents' parallel
    tools): a replay that runs them in another interleaving prints the same lines in
    another order. That is scheduling, not an input the recorder missed, and the
    report says so (the threads are ordered here by how many runs came before)."""
    counter = tmp_path / "runs.txt"
    source = (f"import pathlib, threading, uuid\np = pathlib.Path({str(counter)!r})\n"
              "n = int(p.read_text()) if p.exists() else 0\np.write_text(str(n + 1))\n"
              "first = threading.Event()\n"
              "def tool(name, after):\n"
              "    if after:\n"
              "        first.wait()\n"
              "    print('tool', name, 'done', uuid.uuid4(), flush=True)\n"
              "    first.set()\n"
              "ts = [threading.Thread(target=tool, args=('weather', n > 0)),\n"
              "      threading.Thread(target=tool, args=('ticket', n == 0))]\n"
              "for t in ts:\n    t.start()\nfor t in ts:\n    t.join()\n")
    res = doctor(tmp_path, source, "--fail-on-findings")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "the recording's lines in another order" in res.stdout, res.stdout
    assert "output differs with every request answered" not in res.stdout
    assert "-tool ticket done" in res.stdout and "+tool ticket done" in res.stdout
