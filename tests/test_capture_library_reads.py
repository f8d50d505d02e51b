"""Reads libraries make for themselves are not agent inputs (issue 14, root causes 4, 5).

Root cause 4: httpx2's cookie jar reads the clock on every request once a cookie
with an expiry is stored. Three concurrent calls build their requests before any
response arrives while recording; on replay responses arrive at once, so a later
request already finds the cookie and reads the clock where the recording has no
read. Such reads are the library's (recorded with ``meta["lib"]``) and replay
leniently. Root cause 5: uuid_utils, fastuuid and numpy's global generator are
captured.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

import replay

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cookie_server() -> Iterator[str]:
    """A loopback API that sets a cookie with an expiry, as load balancers do."""
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            body = json.dumps({"ok": True, "path": self.path}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.send_header("set-cookie", "lb=abc; Max-Age=3600; Path=/")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def _three_at_once(url: str) -> list[object]:
    async with httpx2.AsyncClient() as client:
        out: list[object] = []
        for _ in range(2):  # the second round sends the cookie back
            rs = await asyncio.gather(*(client.post(f"{url}/v1/{i}", json={"i": i})
                                        for i in range(3)))
            out += [r.json() for r in rs]
        return out


def test_a_cookie_jar_reading_the_clock_never_diverges(tmp_path: Path, cookie_server: str
                                                       ) -> None:
    path = tmp_path / "cookies.replay"
    with replay.record(path):
        recorded = asyncio.run(_three_at_once(cookie_server))
    reads = [e for e in replay.load(path).events if e.channel == "clock"]
    assert reads and all(str(e.meta.get("lib", "")).startswith("httpx2/") for e in reads)
    for _ in range(10):
        with replay.play(path, unused="fail") as run:
            assert asyncio.run(_three_at_once(cookie_server)) == recorded
        assert run.result is not None and run.result.ok


def test_the_users_own_reads_stay_strict(tmp_path: Path) -> None:
    import time
    path = tmp_path / "strict.replay"
    with replay.record(path):
        time.time()
    with pytest.raises(replay.DivergenceError), replay.play(path, unused="ignore"):
        time.time()
        time.time()  # one more than recorded: the user's read, so a divergence


PROGRAM = """
import numpy, uuid_utils, uuid_utils.compat, fastuuid
from langchain_core.utils.uuid import uuid7
print(numpy.random.random(), numpy.random.randint(0, 10**9))
print(uuid_utils.uuid4(), uuid_utils.uuid7(), uuid_utils.compat.uuid7(), uuid7())
print(type(uuid_utils.uuid7()).__name__, type(uuid_utils.compat.uuid4()).__name__)
print(fastuuid.uuid4(), fastuuid.uuid7(), fastuuid.uuid4_as_strings_bulk(2))
print(type(fastuuid.uuid4()).__name__)
"""


def test_third_party_sources_repeat_when_imported_during_the_run(tmp_path: Path) -> None:
    for name in ("numpy", "uuid_utils", "fastuuid", "langchain_core"):
        pytest.importorskip(name)
    program = tmp_path / "sources.py"
    program.write_text(PROGRAM)
    cassette = str(tmp_path / "sources.replay")
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "replay._cli", *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)

    rec = cli("record", "-o", cassette, "--", "python", str(program))
    assert rec.returncode == 0, rec.stderr
    assert "UUID UUID" in rec.stdout
    for _ in range(3):
        play = cli("play", cassette, "--unused", "fail", "--", "python", str(program))
        assert play.returncode == 0, play.stderr
        assert play.stdout == rec.stdout


def _tempfile_agent(base_url: str) -> tuple[str, str]:
    import openai

    with tempfile.TemporaryDirectory() as folder:  # the process's first temporary name
        (Path(folder) / "notes.txt").write_text("umbrella")
        client = openai.OpenAI(base_url=base_url, api_key="test", max_retries=0)
        answer = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        return answer.choices[0].message.content or "", str(uuid.uuid4())


def test_tempfile_names_generator_is_seeded_once_per_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tempfile seeds the generator of its names (``Random()``) at the process's first
    temporary name and keeps it while the pid stays: a run recorded first in its
    process asks for that seed, a replay after it in the same process does not. The
    seed is the standard library's read, replayed leniently: before, it was the user's
    (the first non-library frame), so the replay diverged with "recorded call(s)
    skipped" at its first request."""
    from fixtures.emulator import Emulator, Script, Turn

    monkeypatch.setattr(tempfile, "_name_sequence", None)  # no temporary name made yet
    path = tmp_path / "tempfile.replay"
    with Emulator(Script([Turn(text="hello")])) as emu:
        url = emu.openai_base_url
        with replay.record(path):
            recorded = _tempfile_agent(url)
    seeds = [e for e in replay.load(path).events if e.request == {"fn": "Random.seed"}]
    assert seeds and all(str(e.meta.get("lib", "")).startswith("tempfile.py:") for e in seeds)
    for _ in range(2):  # the generator is kept: no seed is asked for
        with replay.play(path, unused="fail") as run:
            assert _tempfile_agent(url) == recorded
        assert run.result.unconsumed == ()
