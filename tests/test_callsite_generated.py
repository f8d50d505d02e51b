"""Code made at run time from a string belongs to whoever called it.

A dataclass's ``__init__`` (and a namedtuple's ``__new__``, attrs' methods) is
compiled from a string: its frames say ``<string>``. A ``default_factory`` of
``datetime.now`` runs in that frame. It used to be taken for the user's code, so
a library's dataclass recorded its clock read as a user read at ``<string>``
(and in a process that made the library's object first inside a run, a replay
in one that had not diverged: see tests/test_usage_in_a_run.py). Now the walk
looks past generated frames: the user's dataclass reads at the user's line, a
library's is a library read, and ``python -c`` code (nothing above it) stays
the user's own. Run in fresh interpreters, with the "library" in a real
site-packages folder on ``sys.path``.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys
import textwrap

ROOT = str(pathlib.Path(__file__).resolve().parents[1])

LIBRARY = """
import dataclasses
import datetime


@dataclasses.dataclass
class Stamp:
    at: datetime.datetime = dataclasses.field(default_factory=datetime.datetime.now)


def make() -> Stamp:
    return Stamp()
"""

USER = """
import dataclasses
import datetime
import sys

import replay


def main() -> None:
    import libstamp  # imported in the run: its default_factory is the patched now

    @dataclasses.dataclass
    class Mine:
        at: datetime.datetime = dataclasses.field(default_factory=datetime.datetime.now)

    mine = Mine()  # USER LINE
    theirs = libstamp.make()
    print(type(mine.at).__name__, type(theirs.at).__name__)


mode = sys.argv[1]
if mode == "record":
    with replay.record(sys.argv[2]):
        main()
else:
    with replay.play(sys.argv[2]):
        main()
"""


def _run(tmp: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    env_path = f"{tmp / 'site-packages'}:{ROOT}"
    return subprocess.run([sys.executable, str(tmp / "agent.py"), *args], capture_output=True,
                          text=True, cwd=tmp, timeout=120,
                          env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"})


def test_generated_frames_belong_to_their_caller(tmp_path: pathlib.Path) -> None:
    lib = tmp_path / "site-packages"
    lib.mkdir()
    (lib / "libstamp.py").write_text(LIBRARY)
    (tmp_path / "agent.py").write_text(USER)
    user_line = USER.splitlines().index("    mine = Mine()  # USER LINE") + 1
    cassette = tmp_path / "run.replay"
    rec = _run(tmp_path, "record", str(cassette))
    assert rec.returncode == 0, rec.stderr
    assert rec.stdout == "datetime datetime\n"

    check = textwrap.dedent(f"""
        import replay
        events = [e for e in replay.read_cassette({str(cassette)!r}).events if e.channel == "clock"]
        print([(e.site.function, e.site.line, (e.meta or {{}}).get("lib", "")) for e in events])
    """)
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    (mine, theirs) = ast.literal_eval(out.stdout)
    assert mine == ("main", user_line, "")  # the user's line, not <string>'s __init__
    assert theirs[2].startswith("libstamp.py:")  # a library's read, named by its line
    assert theirs[0] == "main"  # its call site is still the user's line that asked

    for _ in range(2):
        play = _run(tmp_path, "play", str(cassette))
        assert play.returncode == 0, play.stderr
        assert play.stdout == rec.stdout


def test_python_dash_c_code_is_the_users(tmp_path: pathlib.Path) -> None:
    cassette = tmp_path / "run.replay"
    child = textwrap.dedent(f"""
        import random, replay
        with replay.record({str(cassette)!r}):
            random.random()
        [e] = [e for e in replay.read_cassette({str(cassette)!r}).events if e.channel == "random"]
        print(e.site.file, e.site.function, (e.meta or {{}}).get("lib", ""))
    """)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["<string>", "<module>"]
