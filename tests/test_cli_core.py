"""The ``replay`` command on the sample agent, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import replay

ROOT = Path(__file__).resolve().parent.parent
AGENT = str(ROOT / "fixtures" / "agents" / "core_agent.py")
REPLAY = [sys.executable, "-m", "replay._cli"]


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([*REPLAY, *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def test_record_then_play_twenty_times_byte_identical(tmp_path: Path) -> None:
    cassette = str(tmp_path / "cli.replay")
    rec = cli("record", "-o", cassette, "--", "python", AGENT, "--sleep", "0.4")
    assert rec.returncode == 0, rec.stderr
    assert "recorded" in rec.stderr and os.path.exists(cassette)
    assert not os.path.exists(cassette + ".partial")
    with ThreadPoolExecutor(2) as pool:
        plays = list(pool.map(
            lambda _: cli("play", cassette, "--unused", "fail", "--", "python", AGENT,
                          "--sleep", "0.4"), range(20)))
    for p in plays:
        assert p.returncode == 0, p.stderr
        assert p.stdout == rec.stdout
        assert "0 divergence(s)" in p.stderr
    live = subprocess.run([sys.executable, AGENT, "--sleep", "0"], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), check=True)
    assert live.stdout != rec.stdout


def test_play_reports_divergence_with_nonzero_exit(tmp_path: Path) -> None:
    cassette = str(tmp_path / "d.replay")
    assert cli("record", "-o", cassette, "--", "python", AGENT, "--sleep", "0").returncode == 0
    p = cli("play", cassette, "--", "python", AGENT, "--city", "Oslo", "--sleep", "0")
    assert p.returncode != 0
    # The divergence killed the program: its report replaces the traceback, once.
    assert "Traceback" not in p.stderr and p.stderr.count("replay diverged at event") == 1
    assert "args.city: 'Paris' -> 'Oslo'" in p.stderr
    assert "1 divergence(s)" in p.stderr  # the events left over are not a second one


def test_record_a_module_with_dash_m(tmp_path: Path) -> None:
    cassette = str(tmp_path / "m.replay")
    rec = cli("record", "-o", cassette, "--", "python", "-m", "fixtures.agents.core_agent",
              "--sleep", "0")
    assert rec.returncode == 0, rec.stderr
    play = cli("play", cassette, "--", "python", "-m", "fixtures.agents.core_agent",
               "--sleep", "0")
    assert play.returncode == 0, play.stderr
    assert play.stdout == rec.stdout


def test_show_lists_events_filters_and_prints_json(tmp_path: Path) -> None:
    cassette = tmp_path / "s.replay"
    with replay.record(cassette):
        from fixtures.agents import core_agent
        core_agent.run("Paris", 0.0)
    events = replay.load(cassette).events
    out = cli("show", str(cassette))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == len(events)
    assert any("tool:book" in ln and "ERR" in ln and "RuntimeError" in ln for ln in lines)
    tools = cli("show", str(cassette), "--channel", "tool").stdout.splitlines()
    assert len(tools) == 3 and all("tool:" in ln for ln in tools)
    doc = json.loads(cli("show", str(cassette), "--json").stdout)
    assert len(doc["events"]) == len(events)
    assert doc["header"]["version"] == 2
    assert doc["events"][0]["seq"] == 0


def test_verify_exit_codes(tmp_path: Path) -> None:
    cassette = tmp_path / "v.replay"
    with replay.record(cassette):
        from fixtures.agents import core_agent
        core_agent.run("Paris", 0.0)
    good = cli("verify", str(cassette))
    assert good.returncode == 0 and "complete" in good.stdout
    data = cassette.read_bytes()
    cut = tmp_path / "cut.replay"
    cut.write_bytes(data[: len(data) * 2 // 3])
    bad = cli("verify", str(cut))
    assert bad.returncode == 1 and "truncated" in bad.stdout
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    fl = tmp_path / "flip.replay"
    fl.write_bytes(bytes(flipped))
    res = cli("verify", str(fl), "--json")
    assert res.returncode == 1
    assert json.loads(res.stdout)["status"] in {"corrupt", "truncated"}
    show = cli("show", str(cut))
    assert show.returncode == 1 and "damaged" in show.stderr


def test_killed_program_leaves_a_readable_partial(tmp_path: Path) -> None:
    script = tmp_path / "dies.py"
    script.write_text(
        "import os, signal, time, uuid\n"
        "for i in range(5):\n"
        "    print(uuid.uuid4(), time.time(), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    cassette = str(tmp_path / "k.replay")
    res = cli("record", "-o", cassette, "--", "python", str(script))
    assert res.returncode != 0
    assert "SIGKILL" in res.stderr and ".partial" in res.stderr
    got = replay.read_cassette(cassette + ".partial", strict=False)
    assert len(got.events) == 10
    assert isinstance(got.damage, replay.CassetteTruncatedError)
