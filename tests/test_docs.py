"""Every command and code sample in README.md and docs/*.md runs, for real.

How (machinery in tests/_docs_harness.py):

* Each page gets a fresh temporary directory holding the *assets* below, and its
  samples run there in page order, as a reader would run them: a cassette one
  sample writes is there for the next.
* A ``python`` block runs in a fresh interpreter as ``PREAMBLE`` + the page's
  preamble + the block (+ the page's epilogue, rarely).
* A command (an indented command block, ``sh``, ``console``) runs in bash, with
  ``replay`` = ``python -m replay._cli`` of this interpreter, ``python`` and
  ``pytest`` this interpreter (``PLACEHOLDERS`` fill synopsis words such as
  ``ARGS``; ``[--opt]`` parts run once without and once with each; a server's
  fixed ``--port`` becomes a free one). It must exit 0 unless ``EXPECT`` (or, in a
  ``console`` block, a shown ``FAILED``) says the doc implies a failure; output a
  ``console`` block shows must have that shape. ``replay tui`` runs in a
  pseudo-terminal and is quit with ``q`` once it has drawn the run.
* Blocks that are output, formats or data (``text``, ``json``, a report) are
  checked by the function ``CHECKS`` names for them, against real output.
* Marker comments (``skip``, ``file``, ``excerpt``; see the harness) handle the
  rest. A block that none of these handles fails ``test_every_block_is_handled``.

Assets: ``my_agent.py`` = ``agent.py`` = ``my_package/agent.py`` =
tests/_docs_agent.py (a real small agent; its event numbers are the docs'),
``run.replay`` recorded from it with ``replay record``, ``other.replay`` a run in
Lyon instead of Paris (``good``/``bad``, ``before``/``after``, ``a``/``b`` are
copies of the two), small vcrpy cassettes under ``tests/cassettes/`` and an
emulator ``script.json``. ``$OPENAI_BASE_URL`` points at a local emulator that
answers every chat call; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import _docs_harness as h
from tests._docs_harness import Block

ROOT = h.ROOT
AGENT = Path(__file__).with_name("_docs_agent.py")

PLACEHOLDERS = {"ARGS": '--task "refund order 42"'}
"""Words of command synopses and what the harness runs in their place."""

PREAMBLE = """\
import replay
from my_agent import agent, my_agent  # tests/_docs_agent.py: clock, random, tools, a model
"""
"""Prepended to every Python sample: the page's earlier import, and its ``agent()``."""

PAGE_PREAMBLES: dict[str, str] = {
    "docs/recording.md": '''\
import time

class Database:
    """The sample's ``db``: a read whose answer changes between runs."""
    def read(self, key: str) -> dict:
        return {"key": key, "read_at": time.time()}

db = Database()
''',
    "docs/redaction.md": '''\
import dataclasses, re

def drop_customer_emails(event):
    """The sample's callback: mask e-mail addresses in string answers."""
    if isinstance(event.response, str):
        masked = re.sub(r"[\\w.+-]+@[\\w.-]+", "[EMAIL]", event.response)
        return dataclasses.replace(event, response=masked)
    return event
''',
    "docs/emulator.md": """\
from fixtures.emulator import Emulator, Failure, Script, ToolCall, Turn, Usage, When
""",
}

PAGE_EPILOGUES: dict[str, str] = {
    # The interceptor contract defines a function; use it as an interceptor would.
    "docs/architecture.md": """
import os

def pid():
    return intercepted("capture:pid", {"fn": "getpid"}, os.getpid, lambda v: v,
                       lambda ev: ev.response)

with replay.record("contract.replay"):
    recorded = pid()
with replay.play("contract.replay", unused="fail") as run:
    assert pid() == recorded
assert [e.channel for e in replay.load("contract.replay").events] == ["capture:pid"]
assert run.result.ok and run.result.consumed == 1
""",
}

FILE_PREAMBLES: dict[str, str] = {
    # README.md: the support agent of `replay demo`, against its own emulator.
    "tests/test_agent.py": '''\
import os
from fixtures.agents import support_agent

def run_support_agent():
    """The demo's support agent, reading the good replica, against $SUPPORT_LLM_URL."""
    os.environ["PARCELLY_REPLICA"] = "us-1"
    return support_agent.run(support_agent.client_for(os.environ["SUPPORT_LLM_URL"]))
''',
    # docs/pytest.md: a travel agent that books through a tool and asks the model.
    "tests/test_trip.py": '''\
import os, random
import httpx
import replay

@replay.tool
def search_flights(origin: str, dest: str) -> list[dict]:
    return [{"flight": "AF1234", "price": random.randint(80, 400)}]

def agent(city: str) -> str:
    flights = search_flights(origin=city, dest="Rome")
    httpx.post(os.environ["OPENAI_BASE_URL"] + "/chat/completions", json={
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"Book {flights[0]}"}]}).raise_for_status()
    return f"Booked {flights[0]['flight']}"
''',
    "tests/test_llm.py": """\
import openai, pytest
from fixtures.emulator import Emulator, Script, Turn

script = Script([Turn(text="Hello!", repeat=True)])
""",
    "tests/test_marker.py": "import pytest\n",
}

FILE_EPILOGUES: dict[str, str] = {
    # The fixture of docs/pytest.md: live while recording, a dead URL on replay.
    "tests/test_llm.py": """

@pytest.mark.replay(match_on=["method", "path", "body"])
def test_the_llm_fixture(llm, replay_run):
    reply = llm.chat.completions.create(model="gpt-4o",
                                        messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content == "Hello!"
    assert len(replay_run.model_calls) == 1
""",
}


@dataclass(frozen=True)
class Expect:
    """The exit code a doc implies for commands matching ``pattern``, and why."""

    pattern: str
    code: int
    why: str
    contains: str = ""


EXPECT = (
    Expect(r"^replay diff \S+ \S+", 1, "the two runs differ: docs/diff.md says exit 1"),
    Expect(r"^replay play what-if\.replay -- ", 1,
           "strict replay stops where the edited run leaves the recording "
           "(docs/fork-and-edit.md)", contains="changed"),
    Expect(r"^replay (play nope\.replay|record -o no/such/dir/)", 2,
           "a path that cannot be used stops the command before the program starts "
           "(docs/cli.md)"),
)

GENERATED = {
    "docs/performance.md": "benchmark output: make bench (bench/run_all.py) writes this page, "
                           "and tests/test_bench_smoke.py runs it with --quick",
}
"""Pages a program writes: their blocks are its output, skipped here with this reason."""

SLOW_PAGES = ("README.md", "docs/pytest.md", "docs/drift.md", "docs/fork-and-edit.md")
"""Started first, so that the pages run in parallel finish close together."""

INTERACTIVE = re.compile(r"^replay tui\b")
SERVER = re.compile(r"-m fixtures\.emulator\b")


# -- the test's world: an emulator, the assets, pages ------------------------------------

@dataclass
class World:
    """Everything the pages share."""

    tmp: Path
    assets: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A chat emulator on loopback and the recorded assets."""
    from fixtures.emulator import Emulator, Script, Turn

    tmp = tmp_path_factory.mktemp("docs")
    with Emulator(Script([Turn(text="Sure, done.", repeat=True)])) as emu:
        env = h.docs_env({"OPENAI_BASE_URL": emu.openai_base_url,
                          "OPENAI_API_KEY": "sk-docs-test-" + "0" * 24,
                          "ANTHROPIC_BASE_URL": emu.url,
                          "ANTHROPIC_API_KEY": "sk-ant-docs-test-" + "0" * 24})
        assets = tmp / "assets"
        make_assets(assets, env)
        yield World(tmp, assets, env)


VCR_YAML = """\
interactions:
- request:
    body: null
    headers:
      Accept: ['*/*']
    method: GET
    uri: https://api.example.com/search?q=trail+shoes
  response:
    body: {string: '{"results": [{"item": "trail shoes", "price": 89}]}'}
    headers:
      Content-Type: [application/json]
    status: {code: 200, message: OK}
version: 1
"""


def make_assets(assets: Path, env: dict[str, str]) -> None:
    """Record the two runs and write the files the docs name."""
    (assets / "my_package").mkdir(parents=True)
    for name in ("my_agent.py", "agent.py", "my_package/agent.py"):
        shutil.copy(AGENT, assets / name)
    (assets / "my_package" / "__init__.py").write_text("")
    (assets / "tests" / "cassettes").mkdir(parents=True)
    for name in ("old.yaml", "search.yaml"):
        (assets / "tests" / "cassettes" / name).write_text(VCR_YAML)
    from fixtures.emulator import Script, Turn
    Script([Turn(text="Hello from the emulator.", repeat=True)]).save(
        str(assets / "script.json"))
    runs = {"run.replay": "", "other.replay": " --city Lyon"}
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda item: h.sh(
            f'replay record -o {item[0]} -- python my_agent.py --task "refund order 42"'
            f"{item[1]}", assets, env), runs.items()))
    for res in done:
        assert res.code == 0, res.describe()
    for copy, source in (("good", "run"), ("before", "run"), ("a", "run"),
                         ("bad", "other"), ("after", "other"), ("b", "other")):
        shutil.copy(assets / f"{source}.replay", assets / f"{copy}.replay")
    shutil.copy(assets / "run.replay", assets / "tests" / "cassettes" / "run.replay")


@contextlib.contextmanager
def page_env(page: str, world: World) -> Iterator[dict[str, str]]:
    """The environment of one page's commands (README.md: plus the support emulator;
    docs/export.md: plus an OTLP receiver, which must have received spans)."""
    if page == "docs/export.md":
        from tests._otlp_receiver import Receiver
        receiver = Receiver()
        try:
            yield dict(world.env, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url)
        finally:
            receiver.stop()
        spans = receiver.spans()
        assert len(receiver.requests) >= 2 and any(s.name.startswith("chat ") for s in spans), (
            "docs/export.md's exports did not reach the receiver")
        return
    if page != "README.md":
        yield world.env
        return
    from fixtures.emulator import Emulator, Script
    script = Script.load(str(ROOT / "fixtures" / "scripts" / "support.json"))
    with Emulator(script) as emu:
        yield dict(world.env, SUPPORT_LLM_URL=emu.openai_base_url)


# -- running one page ----------------------------------------------------------------------

class Page:
    """One page's samples, run in order in its own directory."""

    def __init__(self, page: str, world: World, env: dict[str, str], name: str = "") -> None:
        self.page = page
        self.world = world
        self.env = env
        self.dir = world.tmp / re.sub(r"\W", "_", name or page)
        shutil.copytree(world.assets, self.dir)
        self.tally = h.Tally()
        self.files: list[str] = []
        self.commands_seen: list[str] = []

    def run(self, blocks: list[Block]) -> h.Tally:
        """Run every block; failures are collected, not raised."""
        for block in blocks:
            try:
                self.handle(block)
            except AssertionError as exc:
                self.tally.failures.append(f"{block.where} ({block.lang or 'no language'}): "
                                           f"{exc}")
            except Exception:
                self.tally.failures.append(f"{block.where} ({block.lang or 'no language'}): "
                                           f"the harness failed:\n{traceback.format_exc()}")
        pending = [f for f in self.files if f.startswith("tests/test_")
                   and not any(f in c for c in self.commands_seen)]
        if pending:
            try:
                self.run_test_files(pending)
            except AssertionError as exc:
                self.tally.failures.append(f"{self.page}: {', '.join(pending)}: {exc}")
        return self.tally

    def handle(self, block: Block) -> None:
        """Run, check or skip one block (see the module docstring)."""
        marker = block.marker
        if self.page in GENERATED:
            self.tally.skipped[block.where] = GENERATED[self.page]
            return
        if marker is not None and marker.word == "skip":
            self.tally.skipped[block.where] = marker.args
            return
        if marker is not None and marker.word == "excerpt":
            h.assert_excerpt(block, ROOT / marker.args)
            self.tally.checked.append(block.where)
            return
        if marker is not None and marker.word == "file":
            target = self.dir / marker.args
            target.parent.mkdir(parents=True, exist_ok=True)
            text = block.text if target.exists() else FILE_PREAMBLES.get(marker.args, "") + \
                "\n" + block.text + FILE_EPILOGUES.get(marker.args, "")
            with target.open("a") as f:
                f.write(text)
            self.files.append(marker.args)
            self.tally.ran.append(block.where)
            return
        if block.lang == "python":
            self.run_python(block)
        elif block.lang == "console":
            self.run_console(block)
        elif block.lang in ("commands", "sh", "bash", "shell"):
            for line in block.commands():
                self.run_command(line, block)
        else:
            check = find_check(block)
            assert check is not None, (
                "no check for this block: give it a checker in CHECKS (tests/test_docs.py) "
                "or a marker comment")
            check(block, self)
            self.tally.checked.append(block.where)
            return
        self.tally.ran.append(block.where)

    # -- kinds of blocks ---------------------------------------------------------------
    def run_python(self, block: Block) -> None:
        """The block as a script, after the preambles, in a fresh interpreter."""
        self.tally.python_blocks += 1
        script = self.dir / f"docs_block_{block.line}.py"
        script.write_text(f"{PREAMBLE}{PAGE_PREAMBLES.get(self.page, '')}\n"
                          f"# --- {block.where} ---\n{block.text}"
                          f"{PAGE_EPILOGUES.get(self.page, '')}")
        if "ReplayApp(" in block.text and ".run()" in block.text:
            res = h.tty([sys.executable, script.name], self.dir, self.env, ready="tool:")
        else:
            res = h.sh(f"python {script.name}", self.dir, self.env, stdin="c\n" * 10)
        assert res.code == 0, f"the sample failed:\n{res.describe()}"

    def run_console(self, block: Block) -> None:
        """``$ command`` lines, each followed by the output it shows."""
        steps: list[tuple[str, list[str]]] = []
        for line in block.text.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
        assert steps, "a console block with no '$ ' command"
        for command, shown in steps:
            failed = any(ln.startswith(("FAILED", "ERROR")) for ln in shown)
            self.run_command(command, block, shown=shown, code=1 if failed else None)

    def run_command(self, line: str, block: Block, *, shown: list[str] | None = None,
                    code: int | None = None) -> None:
        """One doc command line (each expansion of a synopsis)."""
        for command in h.expand(line, PLACEHOLDERS):
            self.tally.commands += 1
            self.commands_seen.append(command)
            if SERVER.search(command):
                self.run_server(command, shown or [])
                continue
            expect = next((e for e in EXPECT if re.search(e.pattern, command)), None)
            want = code if code is not None else (expect.code if expect else 0)
            if INTERACTIVE.search(command):
                res = h.tty(["bash", "-c", h.SHELL_PRELUDE + command], self.dir, self.env,
                            ready="tool:")
            else:
                res = h.sh(command, self.dir, self.env, stdin="c\n" * 10)
            why = f" ({expect.why})" if expect and code is None else ""
            assert res.code == want, f"expected exit {want}{why}:\n{res.describe()}"
            if expect and expect.contains:
                assert expect.contains in res.output, res.describe()
            if shown:
                h.assert_shape(shown, res.output, ordered=False, what=f"output of {command!r}")

    def run_server(self, command: str, shown: list[str]) -> None:
        """A server command: its first lines have the shown shape, it answers, SIGTERM ends it."""
        port = free_port()
        command = re.sub(r"--port \d+", f"--port {port}", command)
        proc = h.start_server(command, self.dir, self.env)
        try:
            first = h.first_line(proc, timeout=30)
            h.assert_shape(shown, first, what=f"output of {command!r}")
            import httpx
            log = httpx.get(f"http://127.0.0.1:{port}/_emulator/requests", timeout=10).json()
            assert log["count"] == 0, log
        finally:
            code = h.stop_server(proc)
        assert code in (0, -15), f"{command!r} exited {code} on SIGTERM"

    def run_test_files(self, files: list[str]) -> None:
        """Test modules no page command ran: record them, then replay them."""
        for args in (["--replay-mode=record", *files], files):
            res = h.sh(" ".join(["pytest", "-q", *args]), self.dir, self.env)
            assert res.code == 0, res.describe()
            self.tally.commands += 1

    def cli(self, command: str, *, code: int = 0, stdin: str = "", merge: bool = False
            ) -> h.Result:
        """A command a checker runs (not a doc sample); asserts its exit code."""
        res = h.sh(command, self.dir, self.env, stdin=stdin, merge=merge)
        assert res.code == code, f"expected exit {code}:\n{res.describe()}"
        return res


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- checks of output, formats and data ------------------------------------------------

Check = Callable[[Block, Page], None]


def check_show_line(block: Block, page: Page) -> None:
    """docs/cli.md: the line format of ``replay show``."""
    res = page.cli("replay show run.replay --channel tool:get_weather")
    h.assert_shape(block.text.splitlines(), res.stdout, what="replay show output")


def check_changed_report(block: Block, page: Page) -> None:
    """docs/recording.md: a real 'request changed' divergence report."""
    res = page.cli("replay play run.replay -- python my_agent.py --city Lyon", code=1)
    h.assert_shape(block.text.splitlines(), res.stderr, what="divergence report")


STEPS_AGENT = '''\
import os, sys
import httpx
import replay

@replay.tool
def step(name: str) -> str:
    return f"did {name}"

def ask() -> int:
    return httpx.post(os.environ["OPENAI_BASE_URL"] + "/chat/completions", json={
        "model": "gpt-4o", "messages": [{"role": "user", "content": "next?"}]}).status_code

def run(names):
    for name in names:
        step(name)
    ask()

run(sys.argv[1:])
'''


def check_skipped_report(block: Block, page: Page) -> None:
    """docs/concurrency.md: a real 'recorded call(s) skipped' report (grade missing)."""
    (page.dir / "steps.py").write_text(STEPS_AGENT)
    page.cli("replay record -o steps.replay -- python steps.py a b")
    res = page.cli("replay play steps.replay -- python steps.py b", code=1)
    h.assert_shape(block.text.splitlines(), res.stderr, what="divergence report")


def check_pdb_session(block: Block, page: Page) -> None:
    """docs/breakpoints.md: type the shown pdb commands at a real ``--break``."""
    typed = [ln[len("(Pdb) "):] for ln in block.text.splitlines() if ln.startswith("(Pdb) ")]
    event = re.search(r"event #(\d+)", block.text)
    assert event and typed, "no event number or pdb commands in the transcript"
    res = page.cli(f"replay play run.replay --break {event.group(1)} -- python agent.py",
                   stdin="\n".join([*typed, "c", ""]), merge=True)
    screen = res.stdout.replace("(Pdb) ", "\n")
    h.assert_shape([ln for ln in block.text.splitlines() if not ln.startswith("(Pdb) ")],
                   screen, what="debugger session")


def _example_cassette(path: Path) -> bytes:
    """docs/cassette-format.md's example, written by the reference writer."""
    import replay
    from replay._cassette import CassetteWriter

    header = replay.Header(created="2024-01-01T00:00:00Z", argv=("agent.py",),
                           python="CPython 3.11.7", platform="Linux", meta={})
    with CassetteWriter(str(path), header, version=1) as writer:  # the version 1 example
        writer.write(replay.Event(seq=0, channel="clock", request=None, response=1.5,
                                  start_ns=10, duration_ns=2, task="main"))
    return path.read_bytes()


def check_hex_dump(block: Block, page: Page) -> None:
    """docs/cassette-format.md: the example's bytes are what the writer writes."""
    data = _example_cassette(page.dir / "example.replay")
    shown = bytearray()
    for line in block.text.splitlines():
        m = re.match(r"^([0-9a-f]{4})  ((?:[0-9a-f]{2} ?){1,16})", line)
        if m:
            assert int(m.group(1), 16) == len(shown), f"offset {m.group(1)} out of order"
            shown += bytes.fromhex(m.group(2))
    assert bytes(shown) == data, (f"the dump shows\n{bytes(shown).hex(' ')}\nthe writer "
                                  f"writes\n{data.hex(' ')}")


def _sections(data: bytes) -> tuple[int, bytes, bytes]:
    """(n, header map bytes, zstd frame) of a cassette, per the layout diagram."""
    import crc32c

    assert data[:8] == b"AGTRPLAY"
    (version,) = struct.unpack_from("<H", data, 8)
    (n,) = struct.unpack_from("<I", data, 10)
    assert version == 1
    (crc,) = struct.unpack_from("<I", data, 14 + n)
    assert crc == crc32c.crc32c(data[8:14 + n]), "header CRC"
    start = 18 + n
    assert data[-16:-12] == b"ARPE", "trailer magic"
    (flen,) = struct.unpack_from("<Q", data, len(data) - 12)
    (fcrc,) = struct.unpack_from("<I", data, len(data) - 4)
    frame = data[start:start + flen]
    assert start + flen + 16 == len(data), "file size = H + F + 16"
    assert fcrc == crc32c.crc32c(frame), "frame CRC"
    return n, data[14:14 + n], frame


def _records(frame: bytes) -> list[dict[str, object]]:
    """The records of a frame: u32 len, u32 CRC32C, msgpack map."""
    import crc32c
    import msgpack
    import zstandard

    raw = zstandard.ZstdDecompressor().stream_reader(frame).read()
    out: list[dict[str, object]] = []
    at = 0
    while at < len(raw):
        length, crc = struct.unpack_from("<II", raw, at)
        payload = raw[at + 8:at + 8 + length]
        assert crc == crc32c.crc32c(payload), f"record CRC at {at}"
        out.append(msgpack.unpackb(payload, raw=False, strict_map_key=False))
        at += 8 + length
    return out


def _dedup_cassette(page: Page) -> list[dict[str, object]]:
    """Records of a cassette that stores a repeated value once (a blob)."""
    import replay
    from replay._cassette import CassetteWriter

    path = page.dir / "blobs.replay"
    big: replay.Value = {"text": "a long tool answer " * 300}  # over CALL_INLINE_SIZE
    with CassetteWriter(str(path), replay.Header.new(), version=1) as writer:
        for seq in range(2):
            writer.write(replay.Event(seq=seq, channel="tool:read", request={"n": seq},
                                      response=big, start_ns=seq, duration_ns=1, task="main"))
    return _records(_sections(path.read_bytes())[2])


def check_layout(block: Block, page: Page) -> None:
    """docs/cassette-format.md: the layout diagram matches a written file."""
    for name in ("magic", "version", "n", "map", "crc", "trailer", "F"):
        assert re.search(rf"\b{name}\b", block.text), f"{name} is not in the diagram"
    _sections(_example_cassette(page.dir / "layout.replay"))


def check_layout_v2(block: Block, page: Page) -> None:
    """docs/cassette-format.md: version 2's journal and packed layouts match written files."""
    import replay
    from replay._cassette import CassetteWriter

    for name in ("JRNL", "PACK", "ARPX", "index", "trailer", "u64 X", "u64 L"):
        assert name in block.text, f"{name} is not in the diagram"
    header = replay.Header(created="2024-01-01T00:00:00Z", argv=("agent.py",),
                           python="CPython 3.11.7", platform="Linux", meta={})
    path = page.dir / "v2.replay"
    w = CassetteWriter(str(path), header)
    w.write(replay.Event(seq=0, channel="clock", request=None, response=1.5))
    journal = Path(w.partial_path).read_bytes()
    w.close()
    packed = path.read_bytes()
    (n,) = struct.unpack_from("<I", packed, 10)
    h = 18 + n
    assert struct.unpack_from("<H", packed, 8) == (2,)
    assert journal[h:h + 4] == b"JRNL" and packed[h:h + 4] == b"PACK"
    magic, x, length, crc = struct.unpack_from("<4sQQI", packed, len(packed) - 24)
    assert magic == b"ARPX" and x + length + 24 == len(packed), "file size = X + L + 24"
    import crc32c
    assert crc == crc32c.crc32c(packed[x:x + length])
    assert packed[h + 4:h + 8] == b"\x28\xb5\x2f\xfd", "the data frames follow the tag"


def check_record_frame(block: Block, page: Page) -> None:
    """docs/cassette-format.md: records are len, crc, payload."""
    assert [ln.split()[2] for ln in block.text.splitlines() if ln.strip()] == [
        "len", "crc", "payload"]
    kinds = [r["k"] for r in _dedup_cassette(page)]
    assert kinds[-1] == "end" and "blob" in kinds and "ev" in kinds, kinds


def check_record_map(block: Block, page: Page) -> None:
    """docs/cassette-format.md: the keys of ev, blob and end records."""
    kind = re.search(r'"k": "(\w+)"', block.text)
    assert kind, "no record kind in the block"
    shown = _keys(block.text)
    records = _dedup_cassette(page)
    real = [r for r in records if r["k"] == kind.group(1)]
    assert real, f"no {kind.group(1)} record in a cassette that should have one"
    for record in real:
        if kind.group(1) == "ev":  # the block names some keys and says '...'
            assert shown <= set(record), (sorted(shown), sorted(record))
        else:
            assert set(record) == shown, (sorted(record), sorted(shown))
    if kind.group(1) == "end":
        assert (real[0]["events"], real[0]["blobs"]) == (2, sum(
            r["k"] == "blob" for r in records))


def _keys(text: str) -> set[str]:
    return set(re.findall(r'"([\w-]+)"\s*:', text))


def _top_keys(text: str) -> set[str]:
    """Keys of the outermost ``{...}`` of ``text`` (``#`` comments ignored)."""
    text = re.sub(r"#[^\n]*", "", text)
    return {m.group(1) for m in re.finditer(r'"([\w-]+)"\s*:', text)
            if text[:m.start()].count("{") - text[:m.start()].count("}") == 1}


def _all_keys(doc: object) -> set[str]:
    if isinstance(doc, dict):
        return set(doc) | set().union(*(_all_keys(v) for v in doc.values()))
    if isinstance(doc, list):
        return set().union(*(_all_keys(v) for v in doc)) if doc else set()
    return set()


def check_diff_json(block: Block, page: Page) -> None:
    """docs/diff.md: every key of the documented JSON is in ``replay diff --json``."""
    doc = json.loads(page.cli("replay diff before.replay after.replay --json", code=1).stdout)
    assert doc["schema"] == "agent-replay/diff/2"
    assert doc["pairs"], "the two runs should differ"
    missing = _keys(block.text) - _all_keys(doc)
    assert not missing, f"documented but not in the real output: {sorted(missing)}"


def check_drift_json(block: Block, page: Page) -> None:
    """docs/drift.md: every key of the documented JSON is in ``replay drift --json``."""
    res = page.cli("replay drift run.replay --json -- python agent.py --city Lyon", code=1)
    doc = json.loads(res.stdout)
    assert doc["schema"] == "agent-replay/drift/1" and doc["findings"], doc
    missing = _keys(block.text) - _all_keys(doc)
    assert not missing, f"documented but not in the real output: {sorted(missing)}"


def check_script_schema(block: Block, page: Page) -> None:
    """docs/emulator.md: the commented schema is a script the emulator accepts."""
    from fixtures.emulator import Script

    doc = json.loads(re.sub(r"//[^\n]*|/\*.*?\*/", "", block.text, flags=re.S))
    assert not Script.from_dict(doc).turns  # unknown keys would raise ScriptError


def check_script_example(block: Block, page: Page) -> None:
    """docs/emulator.md: the example script loads, and serves its first turn's retry."""
    import openai

    from fixtures.emulator import Emulator, Script

    script = Script.loads(block.text)
    with Emulator(script) as emu:
        client = openai.OpenAI(base_url=emu.openai_base_url, api_key="test", max_retries=1)
        reply = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "weather in Paris?"}])
        assert reply.choices[0].message.tool_calls
        assert [r.outcome for r in emu.requests] == ["failed", "answered"]


def check_parent_link(block: Block, page: Page) -> None:
    """docs/fork-and-edit.md: the ``parent`` meta of the fork written just before."""
    import hashlib

    import replay

    shown = json.loads(block.text)
    link = replay.read_header(str(page.dir / "fork.replay")).meta["parent"]
    assert isinstance(link, dict) and set(link) == set(shown), (link, shown)
    assert link["at"] == shown["at"]
    assert link["path"] == str(page.dir / "run.replay")
    assert link["sha256"] == hashlib.sha256((page.dir / "run.replay").read_bytes()).hexdigest()


def check_http_event(block: Block, page: Page) -> None:
    """docs/http.md: the fields of an http event, from ``replay show --json``."""
    doc = json.loads(page.cli("replay show run.replay --channel http --json").stdout)
    ev = doc["events"][0]
    shown: dict[str, set[str]] = {}
    for m in re.finditer(r"^(\w+)\s+(.*?)(?=^\w|\Z)", block.text, re.S | re.M):
        shown[m.group(1)] = _top_keys(m.group(2))
    assert set(shown) == {"request", "response", "chunks", "meta", "error"}, sorted(shown)
    assert set(ev["request"]) == shown["request"], (sorted(ev["request"]), shown["request"])
    assert shown["response"] <= set(ev["response"]), (sorted(ev["response"]), shown)
    assert {"client", "head_ns"} <= set(ev["meta"]) and shown["meta"] >= {"client", "head_ns"}
    _, at_ns = ev["chunks"][0]
    assert isinstance(at_ns, int) and at_ns >= ev["meta"]["head_ns"], ev["chunks"][0]


def check_show_model_call(block: Block, page: Page) -> None:
    """docs/cli.md: every key of the documented ``model_call`` and ``usage`` is in
    ``replay show --json`` of a run with model calls."""
    doc = json.loads(page.cli("replay show run.replay --json").stdout)
    calls = [e["model_call"] for e in doc["events"] if "model_call" in e]
    assert calls and doc["usage"]["calls"] == len(calls), doc["usage"]
    missing = _keys(block.text) - _all_keys({"model_call": calls, "usage": doc["usage"]})
    assert not missing, f"documented but not in the real output: {sorted(missing)}"


def check_jsonl_lines(block: Block, page: Page) -> None:
    """docs/export.md: every key the JSON Lines sample shows is in the real export."""
    rows = [json.loads(line) for line in page.cli("replay export jsonl run.replay")
            .stdout.splitlines()]
    assert [r["type"] for r in rows[:1]] == ["run"] and {r["type"] for r in rows} == {
        "run", "step", "event"}
    missing = _keys(block.text) - _all_keys(rows)
    assert not missing, f"documented but not in the real output: {sorted(missing)}"


SUMMARY_TESTS = '''\
import os
import pytest
import replay

@replay.tool
def step(n: int) -> int:
    return n

@pytest.mark.replay
def test_books(replay_run):
    step(1)

@pytest.mark.replay
def test_refunds(replay_run):
    step(1)

@pytest.mark.replay
def test_cancels(replay_run):
    for n in range(1 if os.environ.get("SHORT") else 3):
        step(n)
'''


def check_pytest_summary(block: Block, page: Page) -> None:
    """docs/pytest.md: the plugin's terminal summary of a real replay session."""
    root = page.dir / "summary"
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_trip.py").write_text(SUMMARY_TESTS)
    env = page.env
    rec = h.sh("pytest -q -p no:cacheprovider --replay-mode=record tests/test_trip.py "
               "-k 'books or cancels'", root, env)
    assert rec.code == 0, rec.describe()
    assert "cassettes: 2 recorded" in rec.stdout and "\nrecorded:\n" in rec.stdout, rec.stdout
    folder = root / "tests" / "cassettes" / "test_trip"
    shutil.copy(folder / "test_books.replay", folder / "test_renamed_long_ago.replay")
    res = h.sh("SHORT=1 pytest -p no:cacheprovider tests/test_trip.py", root, env)
    assert res.code == 1, res.describe()
    h.assert_shape(block.text.splitlines(), res.stdout, what="terminal summary")


SECRETS_AGENT = '''\
import os
import httpx
import replay

@replay.tool
def explode() -> None:
    raise RuntimeError("upstream said: key sk-exc" + "E" * 21 + " is invalid")

with replay.record("run.replay", redact=False):
    base = os.environ["SECRETS_LLM_URL"]
    query = "?key=AIzaSy" + "G" * 33 + "&api_key=qs-" + "q" * 11
    httpx.post(base + "/chat/completions" + query, json={"model": "m", "messages": []},
               headers={"Authorization": "Bearer " + "t" * 29})
    with httpx.stream("POST", base + "/chat/completions", json={
            "model": "m", "stream": True, "messages": []}) as reply:
        reply.read()
    try:
        explode()
    except RuntimeError:
        pass
'''


def check_scan_output(block: Block, page: Page) -> None:
    """docs/redaction.md: ``replay scan`` on a cassette recorded with planted secrets."""
    from fixtures.emulator import Emulator, Script, Turn

    root = page.dir / "secrets"
    root.mkdir()
    (root / "agent.py").write_text(SECRETS_AGENT)
    split = Turn(chunks=["your key is sk-spl", "it" + "S" * 22 + " ok"], repeat=True)
    with Emulator(Script([split])) as emu:
        rec = h.sh("python agent.py", root, dict(page.env, SECRETS_LLM_URL=emu.openai_base_url))
        assert rec.code == 0, rec.describe()
    res = h.sh("replay scan run.replay", root, page.env)
    assert res.code == 1, res.describe()
    h.assert_shape(block.text.splitlines(), res.output, ordered=False, what="replay scan output")


def check_tui_screen(block: Block, page: Page) -> None:
    """docs/tui.md: the main screen, read back from a real terminal (tmux)."""
    if shutil.which("tmux") is None:
        page.tally.skipped[block.where] = "tmux is not installed: the screen cannot be read"
        return
    from tests import tui_samples

    tui_samples.write(page.dir / "trip.replay", tui_samples.agent_run())
    (page.dir / "trip-drift.json").write_text(json.dumps({
        "schema": "agent-replay/drift/1", "findings": [
            {"kind": "prompt", "severity": "warning", "seq": 5, "message": "changed"}]}))
    term = h.Tmux(f"{sys.executable} -m replay._cli tui trip.replay --at 3 "
                  "--findings trip-drift.json", page.dir, page.env, size=(150, 14))
    try:
        screen = term.wait_for("#3 http")
    finally:
        term.close()
    left = "\n".join(ln.split("│")[0] for ln in screen.splitlines())
    right = "\n".join(ln.split("│", 1)[1] for ln in screen.splitlines() if "│" in ln)
    doc = block.text.splitlines()
    h.assert_shape([doc[0]], screen, what="title line")
    h.assert_shape([ln.split("│")[0] for ln in doc[1:]], left, what="timeline")
    h.assert_shape([ln.split("│", 1)[1] for ln in doc[1:-1] if "│" in ln], right,
                   ordered=False, what="detail pane")


CHECKS: tuple[tuple[str, str, Check], ...] = (
    ("docs/cli.md", r"^#\d+ ", check_show_line),
    ("docs/cli.md", r'^"model_call"', check_show_model_call),
    ("docs/recording.md", r"^replay diverged at event", check_changed_report),
    ("docs/concurrency.md", r"^replay diverged at event", check_skipped_report),
    ("docs/breakpoints.md", r"^\[agent-replay\] breakpoint", check_pdb_session),
    ("docs/cassette-format.md", r"^\+-+\+$", check_layout),
    ("docs/cassette-format.md", r"^journal  \(", check_layout_v2),
    ("docs/cassette-format.md", r"^ 0  4  len", check_record_frame),
    ("docs/cassette-format.md", r'^\{"k": "(ev|blob|end)"', check_record_map),
    ("docs/cassette-format.md", r"^0000  41 47", check_hex_dump),
    ("docs/diff.md", r"^\{$", check_diff_json),
    ("docs/drift.md", r"^\{$", check_drift_json),
    ("docs/emulator.md", r'^\{$', check_script_schema),
    ("docs/export.md", r'^\{"type": "run"', check_jsonl_lines),
    ("docs/fork-and-edit.md", r'^\{"sha256"', check_parent_link),
    ("docs/http.md", r"^request\s+\{", check_http_event),
    ("docs/pytest.md", r"^-+ agent-replay -+$", check_pytest_summary),
    ("docs/redaction.md", r"^#0\s+http", check_scan_output),
    ("docs/tui.md", r"^ \S+\.replay\s+\d+ events", check_tui_screen),
)
"""(page, regex on the block's first line, check) for blocks that show output or data."""


STANDALONE = (check_hex_dump, check_layout, check_record_frame, check_record_map,
              check_skipped_report, check_pytest_summary, check_scan_output, check_tui_screen,
              check_script_schema, check_script_example, check_show_model_call)
"""Checks that use only the assets, not what the page's earlier samples wrote."""


def find_check(block: Block) -> Check | None:
    """The check for a non-runnable block."""
    if block.page == "docs/emulator.md" and block.lang == "json":
        return check_script_example
    return next((check for page, pattern, check in CHECKS
                 if page == block.page and re.search(pattern, block.first_line)), None)


RUNNABLE = {"python", "console", "commands", "sh", "bash", "shell"}


def all_blocks() -> list[Block]:
    """Every block of every page."""
    return [b for page in h.PAGES for b in h.extract(page)]


# -- the tests ---------------------------------------------------------------------------

def test_every_block_is_handled() -> None:
    """A new block fails here until it runs, is checked, or is explicitly skipped."""
    unhandled = [f"{b.where} ({b.lang or 'no language'}): {b.first_line[:60]}"
                 for b in all_blocks()
                 if b.marker is None and b.page not in GENERATED and b.lang not in RUNNABLE
                 and find_check(b) is None]
    assert not unhandled, "blocks the docs test neither runs nor checks:\n" + "\n".join(
        unhandled)
    bad = [f"{b.where}: {b.marker}" for b in all_blocks()
           if b.marker is not None and (b.marker.word not in h.MARKER_WORDS
                                        or not b.marker.args)]
    assert not bad, f"unknown or empty docs-test markers: {bad}"


def test_markers_are_rare_and_honest() -> None:
    """Skips are listed here with their reasons; changing them is a visible decision."""
    skips = {(b.page, b.first_line.split("#")[0].strip()): b.marker.args
             for b in all_blocks() if b.marker is not None and b.marker.word == "skip"}
    assert skips == {
        ("README.md", "make demo"): "make demo and make test are the project's own entry "
                                    "points: CI runs make test, and tests/test_demo.py "
                                    "runs replay demo",
        ("docs/architecture.md", "replay/"): "tests/test_layers.py checks this tree "
                                             "against replay/",
        ("docs/production.md", "replay ls --failed --since 1d"):
            "a service and its store; tests/test_service_asgi.py, test_service_recorded.py "
            "and test_cli_runs.py run these steps",
        ("docs/production.md", 'run = replay.play("last")'):
            "needs a stored run; tests/test_service_recorded.py runs it",
        ("docs/production.md", "pytest --replay-store .replay/runs --replay-filter failed "
                               "--replay-filter since=7d -n auto"):
            "needs a store; tests/test_pytest_store.py runs pytest this way",
        ("docs/production.md", "pip install 'agent-replay[s3]'"):
            "needs an S3 server; tests/test_store_s3.py and test_store_s3_service.py run "
            "these steps against SeaweedFS",
        ("docs/production.md", "export REPLAY_STORE=s3://acme-agent-runs/prod/support-bot"):
            "needs an S3 server; tests/test_store_s3_service.py runs these commands "
            "against SeaweedFS",
    }


@pytest.mark.parametrize("inline", [i for p in h.PAGES for i in h.extract_inline(p)],
                         ids=lambda i: f"{i.where}:{i.text}")
def test_inline_synopsis_matches_the_parser(inline: h.Inline) -> None:
    """`replay CMD --opt ...` written in prose or tables names a real command and options."""
    from replay import _cli

    parser = _cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "subcommand").choices
    assert commands is not None
    words = inline.text.replace("[", " ").replace("]", " ").split()
    if "--" in words:
        words = words[:words.index("--")]
    names = list(commands) if words[1] == "COMMAND" else [words[1]]
    for name in names:
        assert name in commands, f"{inline.where}: no command 'replay {name}'"
        options = commands[name]._option_string_actions  # type: ignore[index]
        for word in words[2:]:
            if word.startswith("-") and word != "-":
                option = word.split("=", 1)[0].rstrip(",.")
                assert option in options, f"{inline.where}: 'replay {name}' has no {option}"


def test_pytest_options_named_in_the_docs_exist() -> None:
    """Every ``--replay-*`` option the docs name is one the plugin adds."""
    plugin = "".join(p.read_text() for p in (ROOT / "replay").glob("*pytest*.py"))
    named = {m for page in h.PAGES
             for m in re.findall(r"--replay-[a-z-]+", (ROOT / page).read_text())}
    missing = sorted(n for n in named if f'"{n}"' not in plugin)
    assert named and not missing, f"options the pytest plugin does not have: {missing}"


def skip_reason(block: Block) -> str | None:
    """Why a block is not run, or None."""
    if block.page in GENERATED:
        return GENERATED[block.page]
    if block.marker is not None and block.marker.word == "skip":
        return block.marker.args
    return None


@pytest.mark.parametrize("where", [b.where for b in all_blocks() if skip_reason(b)])
def test_skipped_block(where: str) -> None:
    """One pytest skip per skipped block, with its reason (``-rs`` lists them)."""
    block = next(b for b in all_blocks() if b.where == where)
    pytest.skip(f"{where}: {skip_reason(block)}")


def test_inline_python_commands_name_real_files() -> None:
    """`python some/dir/script.py` in prose names a file of this repository."""
    named = {(page, m) for page in h.PAGES
             for m in re.findall(r"`python3? ([\w./-]+/[\w.-]+\.py)\b",
                                 (ROOT / page).read_text())}
    missing = sorted(f"{page}: {path}" for page, path in named if not (ROOT / path).is_file())
    assert not missing, f"scripts the docs name that do not exist: {missing}"


def test_every_sample_runs(world: World) -> None:
    """Run every page (pages in parallel, blocks in page order) and report all failures.

    Checks in ``STANDALONE`` need nothing from the page before them: they run as
    units of their own, beside the pages.
    """
    lock = threading.Lock()
    tally = h.Tally()
    pages: list[tuple[str, str, list[Block]]] = []
    checks: list[tuple[str, str, list[Block]]] = []
    for page in h.PAGES:
        blocks = h.extract(page)
        alone = [b for b in blocks if b.marker is None and find_check(b) in STANDALONE]
        pages.append((page, page, [b for b in blocks if b not in alone]))
        checks += [(page, f"{page}-{b.line}", [b]) for b in alone]
    slow = [u for u in pages if u[0] in SLOW_PAGES]
    units = slow + checks + [u for u in pages if u not in slow]

    def one(unit: tuple[str, str, list[Block]]) -> None:
        page, name, blocks = unit
        t0 = time.monotonic()
        with page_env(page, world) as env:
            result = Page(page, world, env, name).run(blocks)
        if os.environ.get("DOCS_TIMING"):
            print(f"{name}: {time.monotonic() - t0:.1f}s")
        with lock:
            tally.ran += result.ran
            tally.checked += result.checked
            tally.skipped.update(result.skipped)
            tally.failures += result.failures
            tally.commands += result.commands
            tally.python_blocks += result.python_blocks

    with ThreadPoolExecutor(max(2, min(4, (os.cpu_count() or 2) + 1))) as pool:
        list(pool.map(one, units))
    found = len(all_blocks())
    summary = (f"{found} blocks: {len(tally.ran)} ran ({tally.python_blocks} Python, "
               f"{tally.commands} commands), {len(tally.checked)} checked against real "
               f"output, {len(tally.skipped)} skipped"
               + "".join(f"\n  skipped {w}: {r}" for w, r in sorted(tally.skipped.items())))
    print(summary)
    assert not tally.failures, summary + "\n\n" + "\n\n".join(sorted(tally.failures))
    assert len(tally.ran) + len(tally.checked) + len(tally.skipped) == found, summary
