"""No secret in a run store's index: a key in a tag or in the reason given to
``replay.flag`` is redacted in the SQLite index and in the S3 index objects as it
is in the cassette and the error column (acceptance of issue 17)."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import replay
from replay._runs.store import open_store

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("sk-proj-TAGKEY0123456789abcdefgh", "sk-ant-api03-FLAGKEY0123456789abcdef")


def _flagged(store: str) -> None:
    @replay.recorded(store, keep="failed", tags=[f"deploy-token={KEYS[0]}", "canary"])
    def job(n: int) -> int:
        replay.flag(f"the answer quoted {KEYS[1]} back to the user")
        return n
    job(1)


def _no_key(blob: bytes, where: str) -> None:
    for key in KEYS:
        assert key.encode() not in blob, f"{key} in {where}"


def test_a_local_index_holds_no_key_from_tags_or_flags(tmp_path: Path) -> None:
    store = str(tmp_path / "runs")
    _flagged(store)
    [row] = open_store(store).query()
    assert row.tags == ("deploy-token=[REDACTED]", "canary")
    assert row.attrs["flag"] == "the answer quoted [REDACTED] back to the user"
    assert row.error == "flagged: the answer quoted [REDACTED] back to the user"
    for f in Path(store).iterdir():
        if f.name.startswith("index.sqlite"):
            _no_key(f.read_bytes(), f.name)
    shown = subprocess.run([sys.executable, "-m", "replay._cli", "ls", "--json", "--store",
                            store], capture_output=True, text=True, check=True, timeout=120,
                           env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    _no_key(shown.stdout.encode(), "replay ls --json")
    assert "deploy-token=[REDACTED]" in shown.stdout


def test_s3_index_objects_hold_no_key_from_tags_or_flags(
        seaweed: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in seaweed.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("REPLAY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REPLAY_SPOOL", str(tmp_path / "spool"))
    bucket = seaweed.make_bucket()
    prefix = f"acc-{secrets.token_hex(4)}"
    _flagged(f"s3://{bucket}/{prefix}")
    objects = seaweed.objects(bucket, prefix)
    index = [k for k in objects if "/index/" in k]
    assert index, sorted(objects)
    for key in index:
        _no_key(objects[key], key)
