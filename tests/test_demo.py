"""``replay demo`` without a terminal: the summary names the failing event."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import replay

ROOT = Path(__file__).resolve().parent.parent


def test_demo_without_terminal_prints_summary_naming_the_first_bad_event(
        tmp_path: Path) -> None:
    out_dir = tmp_path / "demo"
    res = subprocess.run([sys.executable, "-m", "replay._cli", "demo", "--dir", str(out_dir)],
                         capture_output=True, text=True, cwd=ROOT, stdin=subprocess.DEVNULL,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=180)
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert "run 3: refunded  4990.00 USD" in text and "WRONG" in text
    m = re.search(r"first bad event: event #(\d+) tool:lookup_order: replica eu-2", text)
    assert m, text
    seq = int(m.group(1))
    bad = next(e for e in replay.load(out_dir / "run-3.replay").events if e.seq == seq)
    assert bad.channel == "tool:lookup_order"
    assert bad.response["total"] == 4990.0  # type: ignore[index]
    assert "refunded 4990.00 USD again" in text
    assert f"replay tui {os.path.relpath(out_dir / 'run-3.replay', ROOT)}" in text
    # the report command for the failing run (against the good one) works as printed
    report = re.search(r"^  (replay report \S+ \S+ -o report\.html)", text, re.M)
    assert report, text
    words = report.group(1).split()
    assert words[3] == os.path.relpath(out_dir / "run-3.replay", ROOT)
    page = out_dir / "report.html"
    made = subprocess.run([sys.executable, "-m", "replay._cli", *words[1:4], "-o", str(page)],
                          capture_output=True, text=True, cwd=ROOT, timeout=180,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert made.returncode == 0, made.stderr
    assert "tool:lookup_order" in page.read_text()
    # No key in any cassette: the SDK sent a fake sk-demo-... key in a header.
    for cassette in out_dir.glob("*.replay"):
        for ev in replay.load(cassette).events:
            assert "sk-demo-" not in repr(ev)
