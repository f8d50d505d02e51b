"""vcrpy and the libraries it imports are loaded only when a run makes a request
through urllib3 (requests) or aiohttp (issue 17).

Importing vcrpy imports every HTTP library it has stubs for, and yaml: ~20k
objects in a service's heap and up to a second on its first recorded request.
A process whose runs speak only httpx never imports it; one that imports
requests or aiohttp before or during a run still records and replays them.
Each case runs in a fresh interpreter, where nothing was imported before.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

import replay

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from test_http_stream import LocalServer

ROOT = pathlib.Path(__file__).resolve().parent.parent
VCR_AND_CO = ("vcr", "urllib3", "requests", "botocore", "boto3", "yaml")


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer()
    yield srv
    srv.stop()


def _child(code: str, *args: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last."""
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         cwd=str(ROOT), timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


HTTPX_ONLY = """
import json, sys
import httpx
import replay
url, path = sys.argv[1:3]
with replay.record(path):
    live = httpx.get(url + "/json").json()
    mid = sorted(sys.modules)
with replay.play(path):
    again = httpx.get(url + "/json").json()
print(json.dumps({"modules": mid, "same": live == again}))
"""


def _heavy(modules: object) -> list[str]:
    assert isinstance(modules, list)
    return sorted(m for m in modules for p in VCR_AND_CO if m == p or m.startswith(p + "."))


def test_an_httpx_only_run_never_imports_vcrpy_or_what_it_imports(
        server: LocalServer, tmp_path: pathlib.Path) -> None:
    out = _child(HTTPX_ONLY, server.url, str(tmp_path / "x.replay"))
    assert _heavy(out["modules"]) == []
    assert out["same"] is True
    assert server.count == 1  # the replay did not reach the server


REQUESTS_AND_AIOHTTP = """
import asyncio, json, sys
import replay
url, path, before = sys.argv[1:4]
if before == "1":
    import aiohttp, requests

def agent():
    import aiohttp, requests
    got = [requests.get(url + "/json?via=requests", timeout=5).json()]
    async def aio():
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/json?via=aiohttp") as r:
                return await r.json()
    got.append(asyncio.run(aio()))
    return got

live = None
if before != "play":  # "play": only replay the run another process recorded
    with replay.record(path):
        assert (before == "1") == ("requests" in sys.modules), "imported in the run"
        live = agent()
with replay.play(path, unused="fail") as run:
    again = agent()
print(json.dumps({"live": live or again, "same": live in (None, again), "ok": run.result.ok,
                  "vcr": "vcr" in sys.modules}))
"""


@pytest.mark.parametrize("before", ["0", "1"], ids=["imported-in-the-run", "imported-before"])
def test_requests_and_aiohttp_are_recorded_and_replayed_imported_before_or_during_the_run(
        server: LocalServer, tmp_path: pathlib.Path, before: str) -> None:
    path = tmp_path / "clients.replay"
    out = _child(REQUESTS_AND_AIOHTTP, server.url, str(path), before)
    assert out["same"] is True and out["ok"] is True and out["vcr"] is True
    assert server.count == 2  # two live requests, none on replay
    events = replay.load(path).events
    http = [e for e in events if e.channel == "http"]
    assert [e.meta.get("client") for e in http] == ["urllib3", "aiohttp"]
    # vcrpy's import inside the run (its clock and random reads) is not the run's:
    # what else there is are requests' own clock reads around its request
    assert {str(e.meta.get("lib")).split("/")[0] for e in events if e.channel != "http"} \
        <= {"requests"}
    assert [e.request["url"] for e in http] == [  # type: ignore[index]
        server.url + "/json?via=requests", server.url + "/json?via=aiohttp"]
    fresh = _child(REQUESTS_AND_AIOHTTP, server.url, str(path), "play")
    assert fresh == {**out, "vcr": True}
    assert server.count == 2


OUTSIDE_FIRST = """
import json, sys
import requests
import replay
url, path = sys.argv[1:3]
session = requests.Session()
session.get(url + "/json?n=outside", timeout=5)  # its pool keeps a live connection
with replay.record(path):
    live = session.get(url + "/json?n=in-run", timeout=5).json()
with replay.play(path, unused="fail") as run:
    again = session.get(url + "/json?n=in-run", timeout=5).json()
print(json.dumps({"same": live == again, "ok": run.result.ok,
                  "http": [e.channel for e in replay.load(path).events].count("http")}))
"""


def test_a_pool_used_before_the_stubs_exist_is_recorded_once_they_do(
        server: LocalServer, tmp_path: pathlib.Path) -> None:
    out = _child(OUTSIDE_FIRST, server.url, str(tmp_path / "pool.replay"))
    assert out == {"same": True, "ok": True, "http": 1}
    assert server.count == 2  # outside the run, and in it; none on replay
