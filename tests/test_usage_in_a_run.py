"""Our own cost figures, worked out while a run records, leave nothing in it.

genai-prices' snapshot read ``datetime.now`` from a dataclass ``__init__`` the
first time a process priced a call; inside a run that read was recorded (and on
replay was an extra call, a divergence), but only in a process that had not
priced anything before. So the check runs in a fresh interpreter.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = str(pathlib.Path(__file__).resolve().parents[1])

CHILD = """
import sys
import replay
from replay._analysis.usage import _genai_cost
with replay.record(sys.argv[1]):
    assert 'genai_prices' not in sys.modules
    cost = _genai_cost("gpt-4o-mini", "openai", input_tokens=1000, output=100)
assert cost is not None and cost > 0, cost
print(sorted({e.channel for e in replay.read_cassette(sys.argv[1]).events}))
"""


def test_pricing_a_call_inside_a_run_records_no_clock_read(tmp_path: pathlib.Path) -> None:
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "run.replay")],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
