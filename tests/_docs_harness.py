"""Machinery for tests/test_docs.py: find every sample in the docs, run it, compare output.

What counts as a sample (``extract``):

* every fenced block (```` ``` ```` or ``~~~``), with its info string as ``lang``;
* every indented (4-space) block after a blank line; it is a *command block*
  when each of its lines starts with ``replay ``, ``make ``, ``pytest``,
  ``python `` or ``$ ``, else it is shown output (``lang`` ``"output"``);
* every inline code span that starts with ``replay `` (a synopsis, as in the
  command table of docs/cli.md): its sub-command and options are checked
  against the real argument parser.

A block may be preceded by one marker comment, ``<!-- docs-test: WORD ARGS -->``
(the nearest non-blank line above the block):

* ``skip REASON``: not run; the test lists it, with the reason, as skipped;
* ``file PATH``: the block is (part of) a file the page's commands use, written
  to PATH in the page's directory (pytest test modules, mostly);
* ``excerpt PATH``: the block is an excerpt of PATH in this repository (which
  the suite runs): every non-blank line of it must appear there, in order.

Output is compared by *shape* (``shape_regex``): numbers, quoted strings,
absolute paths and the contents of ``(...)`` / ``{...}`` may differ, ``...`` and
``…`` match anything, runs of spaces match any spacing; all other text must be
there, line by line.

``DOCS_TIMING=1 pytest -s tests/test_docs.py`` prints how long each command took.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")))
COMMAND_PREFIXES = ("replay ", "make ", "pytest", "python ", "$ ")
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(\w+)\s*(.*?)\s*-->\s*$")
MARKER_WORDS = ("skip", "file", "excerpt")


@dataclass(frozen=True)
class Marker:
    """A ``<!-- docs-test: WORD ARGS -->`` comment above a block."""

    word: str
    args: str


@dataclass(frozen=True)
class Block:
    """One sample of a page."""

    page: str
    line: int
    lang: str
    """Fence info (``python``, ``console``, ``json``...), ``commands`` or ``output``."""
    text: str
    marker: Marker | None = None

    @property
    def where(self) -> str:
        """``page:line``, the block's first line (the fence, for fenced blocks)."""
        return f"{self.page}:{self.line}"

    @property
    def first_line(self) -> str:
        """The first non-blank line of the body."""
        return next((ln for ln in self.text.splitlines() if ln.strip()), "")

    def commands(self) -> list[str]:
        """The command lines of a shell-like block (comments and blanks dropped)."""
        return [ln.strip() for ln in self.text.splitlines()
                if ln.strip() and not ln.lstrip().startswith("#")]


@dataclass(frozen=True)
class Inline:
    """An inline code span that is a ``replay`` synopsis."""

    page: str
    line: int
    text: str

    @property
    def where(self) -> str:
        """``page:line``."""
        return f"{self.page}:{self.line}"


def _marker_above(lines: Sequence[str], index: int) -> Marker | None:
    j = index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    m = MARKER.match(lines[j]) if j >= 0 else None
    return Marker(m.group(1), m.group(2)) if m else None


def extract(page: str, text: str | None = None) -> list[Block]:
    """Every fenced and indented block of ``page`` (a path relative to the repo root)."""
    lines = (text if text is not None else (ROOT / page).read_text(encoding="utf-8")).splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = re.match(r"^(\s*)(`{3,}|~{3,})\s*([^\s`]*)", lines[i])
        if fence:
            indent, mark, lang = fence.groups()
            start = i
            body: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(mark):
                body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
                i += 1
            blocks.append(Block(page, start + 1, lang.lower(), "\n".join(body) + "\n",
                                _marker_above(lines, start)))
            i += 1
            continue
        if lines[i].startswith("    ") and (i == 0 or not lines[i - 1].strip()):
            start = i
            body = []
            while i < len(lines) and (lines[i].startswith("    ") or (
                    not lines[i].strip() and i + 1 < len(lines)
                    and lines[i + 1].startswith("    "))):
                body.append(lines[i][4:])
                i += 1
            is_cmd = all(ln.strip().startswith(COMMAND_PREFIXES) for ln in body if ln.strip())
            blocks.append(Block(page, start + 1, "commands" if is_cmd else "output",
                                "\n".join(body) + "\n", _marker_above(lines, start)))
            continue
        i += 1
    return blocks


def extract_inline(page: str) -> list[Inline]:
    """Inline code spans starting with ``replay `` outside code blocks."""
    found: list[Inline] = []
    in_fence = False
    for n, line in enumerate((ROOT / page).read_text(encoding="utf-8").splitlines(), 1):
        if re.match(r"^\s*(`{3,}|~{3,})", line):
            in_fence = not in_fence
            continue
        if in_fence or line.startswith("    "):
            continue
        for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", line):
            if span.startswith("replay ") and len(span.split()) > 1:
                found.append(Inline(page, n, span))
    return found


# -- commands ----------------------------------------------------------------------------

OPTIONAL = re.compile(r"\s\[(-[^\]]*)\]")


def expand(command: str, placeholders: Mapping[str, str]) -> list[str]:
    """A doc command line as runnable commands.

    A synopsis ``cmd [--a x] [--b]`` runs once bare and once with each optional
    part; placeholder words (``ARGS``) are replaced.
    """
    for word, value in placeholders.items():
        command = re.sub(rf"(?<![\w-]){re.escape(word)}(?![\w-])", value, command)
    optional = OPTIONAL.findall(command)
    bare = OPTIONAL.sub("", command)
    if not optional:
        return [command]
    head, sep, tail = bare.partition(" -- ")
    return [bare] + [f"{head} {opt}{sep}{tail}".rstrip() for opt in optional]


SHELL_PRELUDE = """\
replay() { "$DOCS_PYTHON" -m replay._cli "$@"; }
python() { "$DOCS_PYTHON" "$@"; }
python3() { "$DOCS_PYTHON" "$@"; }
pytest() { "$DOCS_PYTHON" -m pytest "$@"; }
export -f replay python python3 pytest
"""
"""Doc commands run in bash, with ``replay``, ``python`` and ``pytest`` meaning this
interpreter (``replay`` is ``python -m replay._cli``)."""


@dataclass
class Result:
    """A finished command."""

    command: str
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout then stderr."""
        return self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr

    def describe(self, limit: int = 2500) -> str:
        """The command, its exit code and the end of its output, for failure messages."""
        out = self.output
        if len(out) > limit:
            out = "..." + out[-limit:]
        return f"$ {self.command}\n[exit {self.code}]\n{out}"


def docs_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every doc command: this interpreter first on PATH, the repo
    importable (``fixtures``), no bytecode written, nothing inherited from the outer
    pytest run."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "COV_", "COLUMNS", "LINES"))
           and k not in ("TMUX", "PYTHONBREAKPOINT")}
    bindir = str(Path(sys.executable).parent)
    env.update(DOCS_PYTHON=sys.executable, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1",
               PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}", NO_COLOR="1")
    env.update(extra or {})
    return env


def sh(command: str, cwd: Path, env: Mapping[str, str], *, stdin: str = "",
       timeout: float = 120.0, merge: bool = False) -> Result:
    """Run one doc command line in bash (see ``SHELL_PRELUDE``)."""
    t0 = time.monotonic()
    proc = subprocess.run(
        ["bash", "-c", SHELL_PRELUDE + command], cwd=cwd, env=dict(env, COLUMNS="200"),
        input=stdin,
        capture_output=not merge, stdout=subprocess.PIPE if merge else None,
        stderr=subprocess.STDOUT if merge else None, text=True, timeout=timeout)
    if os.environ.get("DOCS_TIMING"):
        print(f"  {time.monotonic() - t0:5.1f}s {command[:100]}")
    return Result(command, proc.returncode, proc.stdout or "", proc.stderr or "")


ANSI = re.compile(r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-B]|.)")


def tty(argv: Sequence[str], cwd: Path, env: Mapping[str, str], *, ready: str,
        keys: bytes = b"q", timeout: float = 60.0) -> Result:
    """Run an interactive program in a pseudo-terminal (120x30).

    When its screen shows ``ready`` (escape codes stripped), type ``keys`` and wait
    for it to exit.
    """
    import fcntl
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env, TERM="xterm-256color"),
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    raw = b""
    sent = False
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            readable, _, _ = select.select([master], [], [], 0.1)
            if readable:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    chunk = b""
                raw += chunk
                if not chunk and proc.poll() is not None:
                    break
            elif proc.poll() is not None:
                break
            if not sent and ready in ANSI.sub("", raw.decode("utf-8", "replace")):
                time.sleep(0.3)
                os.write(master, keys)
                sent = True
        else:
            proc.kill()
    finally:
        os.close(master)
    code = proc.wait(timeout=10)
    if os.environ.get("DOCS_TIMING"):
        print(f"  {timeout - (end - time.monotonic()):5.1f}s tty {shlex.join(argv)[-80:]}")
    screen = ANSI.sub("", raw.decode("utf-8", "replace"))
    if not sent:
        screen += f"\n[docs harness: never saw {ready!r} on the screen]"
        code = code or 99
    return Result(shlex.join(argv), code, screen, "")


class Tmux:
    """A private tmux server with one window running a command, read back as text."""

    def __init__(self, command: str, cwd: Path, env: Mapping[str, str],
                 size: tuple[int, int] = (120, 14)) -> None:
        self.exe = shutil.which("tmux") or "tmux"
        self.sock = f"docs-test-{os.getpid()}-{time.monotonic_ns()}"
        self.env = dict(env)
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()
                           if k in ("PYTHONPATH", "DOCS_PYTHON", "PATH",
                                    "PYTHONDONTWRITEBYTECODE"))
        self.run("new-session", "-d", "-x", str(size[0]), "-y", str(size[1]), "-c", str(cwd),
                 f"env {exports} {command}")

    def run(self, *args: str) -> str:
        """A tmux command on this server."""
        return subprocess.run([self.exe, "-L", self.sock, *args], capture_output=True,
                              text=True, check=False, timeout=10, env=self.env).stdout

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        """The screen, once it shows ``text``."""
        end = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < end:
            screen = self.run("capture-pane", "-p")
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"the TUI never showed {text!r}; the screen was:\n{screen}")

    def close(self) -> None:
        """Quit the app and this tmux server only."""
        self.run("send-keys", "q")
        time.sleep(0.2)
        self.run("kill-server")


def start_server(command: str, cwd: Path, env: Mapping[str, str]) -> subprocess.Popen[str]:
    """A long-running doc command (a server), in its own process group."""
    return subprocess.Popen(["bash", "-c", SHELL_PRELUDE + "exec " + command], cwd=cwd,
                            env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first line a server started by ``start_server`` prints (within ``timeout``)."""
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], timeout)
    if not readable:
        raise AssertionError(f"the server printed nothing in {timeout:.0f} s")
    return proc.stdout.readline()


def stop_server(proc: subprocess.Popen[str], timeout: float = 15.0) -> int:
    """SIGTERM the server started by ``start_server``; its exit code."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError("the server did not stop on SIGTERM") from None


# -- shapes ------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ellipsis>\.\.\.|…)
  | (?P<dashes>(?P<dash>[-=─━])(?P=dash){2,})
  | (?P<path>(?<![\w.])/[\w.\-/]*[\w])
  | (?P<quoted>'[^']*'|"[^"]*")
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<space>\s+)
  | (?P<open>[({])
  | (?P<other>.)
""", re.VERBOSE)


def shape_regex(line: str) -> str:
    """A regular expression for lines of the same shape as ``line`` (see the module doc)."""
    out: list[str] = []
    depth = 0
    closing = {"(": ")", "{": "}"}
    stack: list[str] = []
    for m in _TOKEN.finditer(line.strip()):
        kind, text = m.lastgroup, m.group()
        if depth:  # inside (...) or {...}: skip to the matching close
            if text in closing:
                stack.append(closing[text])
                depth += 1
            elif stack and text == stack[-1]:
                stack.pop()
                depth -= 1
                if not depth:  # output may cut the group short ('{'a': 1, 'b...')
                    out.append(re.escape(text) + "?")
            continue
        if kind == "ellipsis":
            out.append(".*")
        elif kind == "dashes":
            out.append(re.escape(text[0]) + "+")
        elif kind == "path":
            out.append(r"\S+?")
        elif kind == "quoted":
            out.append(f"{re.escape(text[0])}.*?{re.escape(text[0])}")
        elif kind == "number":
            out.append(r"[\d.]+")
        elif kind == "space":
            out.append(r"\s+")
        elif kind == "open":
            out.append(re.escape(text) + ".*?")
            stack.append(closing[text])
            depth = 1
        else:
            out.append(re.escape(text))
    return "".join(out)


def assert_shape(doc: Iterable[str], actual: str, *, ordered: bool = True,
                 what: str = "output") -> None:
    """Each non-blank ``doc`` line has a same-shaped line in ``actual`` (in order)."""
    lines = [ln.rstrip() for ln in actual.splitlines()]
    at = 0
    for want in (d for d in doc if d.strip()):
        pattern = re.compile(shape_regex(want))
        start = at if ordered else 0
        hit = next((i for i in range(start, len(lines)) if pattern.search(lines[i])), None)
        if hit is None:
            shown = "\n".join(lines[-60:])
            raise AssertionError(
                f"the docs show the {what} line\n    {want}\nbut no line of that shape "
                f"{'follows' if ordered and at else 'is'} in the real {what}"
                f"{f' after line {at}' if ordered and at else ''}:\n{shown}")
        at = hit + 1


def assert_excerpt(block: Block, path: Path) -> None:
    """Every line of ``block`` is a line of ``path``, in the same order.

    Blank lines and ``...`` lines (elisions) are skipped, and ``# type: ignore[...]``
    comments are not compared.
    """
    def norm(line: str) -> str:
        return re.sub(r"\s+# type: ignore\[[^\]]*\]$", "", line.rstrip())

    source = [norm(ln) for ln in path.read_text(encoding="utf-8").splitlines()]
    at = 0
    for want in (norm(ln) for ln in block.text.splitlines()
                 if ln.strip() and ln.strip() != "..."):
        try:
            at = source.index(want, at) + 1
        except ValueError:
            raise AssertionError(f"{block.where} is marked as an excerpt of {path.name}, "
                                 f"but this line is not there (after line {at}):\n"
                                 f"    {want}") from None


@dataclass
class Tally:
    """What happened to the blocks of the docs."""

    ran: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    commands: int = 0
    python_blocks: int = 0
