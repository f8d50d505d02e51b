"""Write the framework matrix of docs/frameworks.md from a conformance run.

    FRAMEWORKS_REPORT=/tmp/fw make test   # or: pytest tests/test_frameworks.py
    python tests/frameworks_matrix.py /tmp/fw

(``make frameworks-doc`` does both.) Each test of tests/test_frameworks.py
writes DIR/NAME.json with its outcome; this replaces the table between the
``matrix`` markers of docs/frameworks.md with one row per agent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "frameworks.md"
START, END = "<!-- matrix:start -->", "<!-- matrix:end -->"
FEATURES = ("tools", "streaming", "parallel tools", "handoffs")


def row(data: dict[str, object]) -> str:
    """One table row of an agent's outcome."""
    features = data.get("features")
    have = set(features) if isinstance(features, list) else set()
    marks = ["yes" if f in have else "-" for f in FEATURES]
    other = sorted(str(f) for f in have - set(FEATURES))
    plays, same = data.get("plays"), data.get("identical")
    clean, conns = data.get("clean"), data.get("connections")
    ok = same == plays and clean == plays and conns == 0
    status = (f"{'passes' if ok else 'FAILS'}: {same}/{plays} byte-identical, "
              f"{clean}/{plays} without divergence, {conns} connections")
    return (f"| {data['framework']} | {data['version']} | `{data['module']}` | "
            + " | ".join(marks) + f" | {', '.join(other) or '-'} | {status} |")


def table(results: list[dict[str, object]]) -> str:
    """The whole matrix."""
    head = ("| framework | version | agent | " + " | ".join(FEATURES) + " | also | status |\n"
            "|---|---|---|" + "---|" * len(FEATURES) + "---|---|")
    return "\n".join([head, *(row(r) for r in results)])


def main(folder: str) -> None:
    """Rewrite the matrix of docs/frameworks.md from ``folder``'s results."""
    results = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))]
    if not results:
        raise SystemExit(f"no results in {folder}: run tests/test_frameworks.py with "
                         "FRAMEWORKS_REPORT set")
    text = DOC.read_text()
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    DOC.write_text(f"{before}{START}\n{table(results)}\n{END}{after}")
    print(f"wrote {len(results)} rows to {DOC}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/frameworks")
