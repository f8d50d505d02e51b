"""Framework conformance: real agents on real frameworks replay exactly (issue 14).

Each agent in fixtures/frameworks/ is recorded once against the loopback LLM
emulator, then replayed ten times with the emulator stopped, a listener on its
port that counts every connection, and scheduling jitter the recorder does not
capture (``FW_JITTER``: thread switch interval and spin waits, seeded per run).
Every replay must print the recording's stdout byte for byte, with no
divergence, no unused event and no connection.

With ``FRAMEWORKS_REPORT=DIR`` each test writes its outcome to DIR/NAME.json;
``python -m tests.frameworks_matrix DIR`` turns those into docs/frameworks.md.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._portguard import PortGuard

ROOT = Path(__file__).resolve().parent.parent
PLAYS = int(os.environ.get("FRAMEWORKS_PLAYS", "10"))


@dataclass(frozen=True)
class Agent:
    """One framework agent of the suite and what it exercises."""

    module: str
    framework: str
    """Display name."""
    distribution: str
    """The installed package whose version the matrix shows."""
    imports: str
    """A module that must import for the agent to run."""
    features: tuple[str, ...]
    """What the agent exercises: tools, streaming, parallel tools, handoffs, ..."""


AGENTS = (
    Agent("openai_agents", "openai-agents", "openai-agents", "agents",
          ("tools", "streaming", "handoffs", "sync", "async")),
    Agent("pydantic_ai_agent", "pydantic-ai", "pydantic-ai-slim", "pydantic_ai",
          ("tools", "streaming", "parallel tools", "sync", "async", "iter")),
    Agent("langchain_agent", "LangChain", "langchain-openai", "langchain_openai",
          ("tools", "streaming")),
    Agent("langgraph_agent", "LangGraph", "langgraph", "langgraph",
          ("tools", "parallel tools", "checkpointer")),
    Agent("litellm_agent", "litellm", "litellm", "litellm", ("completion", "streaming", "async")),
    Agent("genai_agent", "google-genai", "google-genai", "google.genai",
          ("tools", "streaming", "async")),
    Agent("anthropic_tool_runner", "anthropic tool runner", "anthropic", "anthropic",
          ("tools", "streaming")),
    Agent("mcp_agent", "MCP (stdio server)", "mcp", "mcp", ("tools", "parallel tools")),
    Agent("smolagents_agent", "smolagents", "smolagents", "smolagents",
          ("tools", "streaming", "parallel tools", "code agent")),
    Agent("haystack_agent", "Haystack", "haystack-ai", "haystack",
          ("tools", "streaming", "parallel tools", "async", "pipeline")),
    Agent("dspy_agent", "DSPy (lm15 engine)", "dspy", "dspy", ("tools", "streaming", "async")),
)


def _env(jitter: int) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), FW_JITTER=str(jitter),
                PYTHONHASHSEED="0")


def _start_emulator(script: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-m", "fixtures.emulator", "--script", str(script),
                             "--port", "0"], cwd=ROOT, env=_env(0), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("listening on"), line + (proc.stderr.read() if proc.stderr else "")
    return proc, int(line.strip().rsplit(":", 1)[1])


def _replay(*args: str, jitter: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "replay._cli", *args], cwd=ROOT,
                          env=_env(jitter), capture_output=True, text=True, timeout=300)


def _report(agent: Agent, outcome: dict[str, object]) -> None:
    out = os.environ.get("FRAMEWORKS_REPORT")
    if not out:
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    try:
        version = importlib.metadata.version(agent.distribution)
    except importlib.metadata.PackageNotFoundError:
        version = "-"
    data = {"module": agent.module, "framework": agent.framework, "version": version,
            "features": list(agent.features), **outcome}
    (Path(out) / f"{agent.module}.json").write_text(json.dumps(data, indent=1))


@pytest.mark.parametrize("agent", AGENTS, ids=[a.module for a in AGENTS])
def test_framework_agent_replays_exactly(agent: Agent, tmp_path: Path) -> None:
    if importlib.util.find_spec(agent.imports.split(".")[0]) is None:
        pytest.skip(f"{agent.framework} is not installed (make test installs the "
                    "'frameworks' extra)")
    script = ROOT / "fixtures" / "frameworks" / "scripts" / f"{agent.module}.json"
    cassette = str(tmp_path / f"{agent.module}.replay")
    program = ["--", "python", "-m", f"fixtures.frameworks.{agent.module}"]
    emulator, port = _start_emulator(script)
    try:
        url = f"http://127.0.0.1:{port}"
        rec = _replay("record", "-o", cassette, *program, "--base-url", url, jitter=0)
    finally:
        emulator.terminate()
        emulator.wait(10)
    assert rec.returncode == 0, rec.stderr[-3000:]
    assert rec.stdout.strip(), "the agent printed nothing"
    guard = PortGuard(port)
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(2) as pool:
            plays = list(pool.map(
                lambda i: _replay("play", cassette, "--unused", "fail", *program,
                                  "--base-url", url, jitter=i + 1), range(PLAYS)))
    finally:
        guard.close()
    identical = sum(p.returncode == 0 and p.stdout == rec.stdout for p in plays)
    clean = sum("0 divergence(s)" in p.stderr for p in plays)
    _report(agent, {"plays": PLAYS, "identical": identical, "clean": clean,
                    "connections": guard.connections,
                    "seconds": round(time.perf_counter() - started, 1)})
    for p in plays:
        assert p.returncode == 0, p.stderr[-3000:]
        assert p.stdout == rec.stdout
        assert "0 divergence(s)" in p.stderr and "0 unused" in p.stderr, p.stderr[-2000:]
    assert guard.connections == 0


def test_the_docs_matrix_shows_every_agent_at_its_installed_version() -> None:
    """docs/frameworks.md is written from this suite (make frameworks-doc): it has a row
    per agent, at the version installed here."""
    page = (ROOT / "docs" / "frameworks.md").read_text()
    rows = page.split("<!-- matrix:start -->", 1)[1].split("<!-- matrix:end -->", 1)[0]
    for agent in AGENTS:
        line = next((r for r in rows.splitlines() if f"`{agent.module}`" in r), None)
        assert line is not None, f"docs/frameworks.md has no row for {agent.module}"
        try:
            version = importlib.metadata.version(agent.distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
        assert f"| {version} |" in line, f"{agent.module}: re-run make frameworks-doc"
