"""`make bench` smoke run: every bench script runs with tiny sizes and the page has its goals.

The figures of a ``--quick`` run mean nothing; this checks that each script
still runs to the end, prints its GOAL lines, and that ``run_all.py`` turns
them into the goals table of the page.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_bench_writes_the_goals_table(tmp_path: Path) -> None:
    out = tmp_path / "performance.md"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run_all.py"), "--quick",
                           "--output", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = out.read_text(encoding="utf-8")
    assert page.startswith("# Performance\n\n**Smoke run")
    assert "## Goals: " in page
    assert "| goal | measured | target | verdict | what was measured | where |" in page
    # no script failed, and every goal was measured by its script
    assert "(exit " not in page and "timed out" not in page, page[-3000:]
    assert "not measured" not in page
    for goal in ("recording overhead per HTTP", "replay per request flat",
                 "replay at least 100x", "load at least 10x", "time to first chunk",
                 "clock interception no slower", "clock interception on replay",
                 "linearly with turns", "1/10 of vcrpy's YAML size",
                 "TUI first paint", "TUI keystroke", "diff of 10,000"):
        row = next((ln for ln in page.splitlines() if ln.startswith("| ") and goal in ln),
                   None)
        assert row is not None, goal
        assert "| met |" in row or "| **missed** |" in row, row
    # the GOAL lines went into the table, not into the scripts' sections
    assert "\nGOAL {" not in page
    for script in ("bench_http.py", "bench_growth.py", "bench_e2e.py", "bench_clock.py",
                   "bench_tui.py", "bench_diff.py", "bench_core.py", "bench_format.py",
                   "bench_scale.py"):
        assert f"## {script}" in page
    assert "agent-replay" in page and "vcrpy" in page
