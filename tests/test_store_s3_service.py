"""A FastAPI service on uvicorn records into an s3:// store; another machine lists,
pulls and replays its failed request with the ``replay`` CLI (issue 17, item 5).

Real parts only: SeaweedFS (the ``seaweed`` fixture), uvicorn serving
fixtures/service/app.py (``replay.RecordingMiddleware``, keep failed), the LLM
emulator, and ``python -m replay._cli`` in fresh processes whose only link to
the service is the bucket.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

import replay
from tests._servers import Server

pytest.importorskip("boto3")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "replay._cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_a_laptop_lists_pulls_and_replays_a_services_failed_request(
        seaweed: Any, emulator: Any, tmp_path: Path) -> None:
    from fixtures.emulator import Turn

    llm = emulator(Turn(text="Sure.", repeat=True))
    url = f"s3://{seaweed.make_bucket()}/prod/support"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REPLAY_"))}
    server_dir, laptop_dir = tmp_path / "server", tmp_path / "laptop"
    server_dir.mkdir()
    laptop_dir.mkdir()
    server_env = {**base, **seaweed.env(), "PYTHONPATH": str(ROOT), "REPLAY_STORE": url,
                  "AGENT_KEEP": "failed", "AGENT_LLM_URL": llm.openai_base_url,
                  "REPLAY_CACHE": str(server_dir / "cache")}
    server = Server([sys.executable, "-m", "uvicorn", "fixtures.service.app:app", "--host",
                     "127.0.0.1", "--port", "{port}", "--log-level", "warning"], server_env,
                    tmp_path / "uvicorn.log", cwd=server_dir)
    service = server.url
    try:
        for i, question in enumerate(["hello", "boom please", "hi again", "crash now"]):
            r = httpx.post(f"{service}/ask/u{i}", json={"question": question}, timeout=30,
                           headers={"x-request-id": f"req-{i}"})
            assert r.status_code == (500 if i % 2 else 200), r.text
    finally:
        server.stop()
    calls = llm.request_count

    # the laptop: the same bucket and the service's configuration, its own (empty)
    # cache, no spool, no REPLAY_STORE
    laptop_env = {**base, **seaweed.env(), "PYTHONPATH": str(ROOT),
                  "AGENT_LLM_URL": llm.openai_base_url,
                  "REPLAY_CACHE": str(laptop_dir / "cache")}
    ls = _cli("ls", "--store", url, "--json", env=laptop_env, cwd=laptop_dir)
    assert ls.returncode == 0, ls.stderr
    rows = json.loads(ls.stdout)
    assert sorted(r["attrs"]["request_id"] for r in rows) == ["req-1", "req-3"]  # kept: 5xx
    assert {r["status"] for r in rows} == {"failed"}
    assert {r["entry"] for r in rows} == {"POST /ask/{user}"}
    boom = next(r for r in rows if r["attrs"]["request_id"] == "req-1")
    failed = _cli("ls", "--store", url, "--failed", env=laptop_env, cwd=laptop_dir)
    assert failed.returncode == 0 and boom["id"] in failed.stdout, failed.stderr

    # pulled by a prefix, as a user types one: the shortest that names it alone (two
    # runs stored in the same second share the time part and maybe a hex digit)
    others = [r["id"] for r in rows if r is not boom]
    prefix = next(boom["id"][:n] for n in range(17, len(boom["id"]) + 1)
                  if not any(o.startswith(boom["id"][:n]) for o in others))
    pull = _cli("pull", prefix, "--store", url, env=laptop_env, cwd=laptop_dir)
    assert pull.returncode == 0, pull.stderr
    pulled = laptop_dir / f"{boom['id']}.replay"
    cassette = replay.read_cassette(pulled)
    assert any(e.channel == "http" for e in cassette.events)
    text = repr(cassette.header) + "".join(repr(e) for e in cassette.events)
    assert seaweed.secret_key not in text and seaweed.access_key not in text

    # replayed on the laptop by its run id: the request handled again, strictly
    # from the cassette (the emulator is not asked again)
    play = _cli("play", boom["id"], "--store", url, env=laptop_env, cwd=laptop_dir)
    assert play.returncode in (0, 1), play.stderr
    assert "HTTP 500" in play.stdout + play.stderr, play.stdout + play.stderr
    assert "0 unused, 0 divergence(s)" in play.stderr
    assert llm.request_count == calls
