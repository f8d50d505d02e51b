"""Running a program under a session in a child process.

The child starts with PYTHONPATH pointing at ``replay/_boot`` (whose
``sitecustomize`` opens the session before user code runs) and the run
described in ``AGENT_REPLAY_BOOT``; its result comes back in a JSON file.

The program never runs without its session: the cassette and the output are
checked before the child starts (:mod:`replay._runs.preflight`), and a child
whose session cannot start exits (code :data:`BOOT_FAILED`) before the
program's first line, reporting why in the result file; :func:`run_child`
raises :class:`ProgramNotRun` for both.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from typing import Any

from replay._cassette import read_header
from replay._cassette.errors import SessionError
from replay._runs.preflight import require, run_problem

BOOT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_boot")
"""The folder put first on the child's PYTHONPATH."""

BOOT_FAILED = 70
"""The child's exit code when its session could not start (the program did not run)."""


class ProgramNotRun(SessionError):
    """The session could not start in the child, so the program was not run."""


def command_line(raw: list[str]) -> list[str]:
    """The program after ``--``; ``python`` means this interpreter."""
    cmd = list(raw)
    if not cmd:
        raise SystemExit("replay: give the program after --, e.g. -- python agent.py")
    if cmd[0] in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        cmd[0] = sys.executable
    elif shutil.which(cmd[0]) is None and not os.path.exists(cmd[0]):
        raise SystemExit(f"replay: command not found: {cmd[0]}")
    return cmd


def _hash_seed(mode: str, cassette: str, env: dict[str, str]) -> str:
    """The child's ``PYTHONHASHSEED``: the user's own when set; on replay the recorded
    one; else a fresh one, recorded. String hashes decide the order of sets, so a
    program that prints a set prints it in the recorded order again."""
    if env.get("PYTHONHASHSEED"):
        return env["PYTHONHASHSEED"]
    if mode != "record" and os.path.exists(cassette):
        with contextlib.suppress(Exception):
            recorded = read_header(cassette).meta.get("hashseed")
            if isinstance(recorded, str) and recorded.isdigit():
                return recorded
    return str(secrets.randbelow(2**32 - 1) + 1)


def run_child(mode: str, cassette: str, command: list[str], *,
              extra: dict[str, Any] | None = None,
              capture: list[str] | None = None) -> tuple[int, dict[str, Any]]:
    """Run ``command`` under a session in a child; (exit code, the child's result).

    With ``capture`` (a list), the child's stdout and stderr are appended to it
    instead of reaching the terminal.

    Raises :class:`~replay._runs.preflight.CassettePathError` (before starting
    anything) when the cassette or the output cannot be used, and
    :class:`ProgramNotRun` when the child's session failed to start.
    """
    extra = dict(extra or {})
    require(run_problem(mode, cassette, output=extra.get("output"), at=extra.get("at")))
    fd, result_path = tempfile.mkstemp(prefix="agent-replay-", suffix=".json")
    os.close(fd)
    spec: dict[str, Any] = {"mode": mode, "cassette": os.path.abspath(cassette),
                            "result": result_path}
    spec.update(extra)
    env = dict(os.environ)
    seed = _hash_seed(mode, cassette, env)
    env["PYTHONHASHSEED"] = seed
    spec["metadata"] = {**(spec.get("metadata") or {}), "hashseed": seed}
    env["AGENT_REPLAY_BOOT"] = json.dumps(spec)
    env["PYTHONPATH"] = os.pathsep.join(
        [BOOT_DIR] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    try:
        proc = subprocess.run(command, env=env, capture_output=capture is not None,
                              text=capture is not None)
        if capture is not None:
            capture += [proc.stdout, proc.stderr]
        result = _read_result(result_path)
    finally:
        os.unlink(result_path)
    if result.get("boot_error"):
        raise ProgramNotRun(f"the program was not run: {result['boot_error']}")
    return proc.returncode, result


def run_entry(mode: str, cassette: str, *, extra: dict[str, Any] | None = None
              ) -> tuple[int, dict[str, Any]]:
    """Re-invoke a stored run's entry point in a fresh Python process under a run in
    ``mode`` (``replay play RUN`` with no program); (exit code, the child's result).

    The child imports the entry before its session starts (``entry.main``), so no
    bootstrap is involved; the cassette is checked here first. Raises
    :class:`ProgramNotRun` when the child's run could not start (the entry was not
    called), e.g. a crashed run's truncated cassette without ``allow_damaged``.
    """
    from replay._runs.entry_child import CHILD_CODE

    extra = dict(extra or {})
    require(run_problem(mode, cassette, output=extra.get("output")))
    fd, result_path = tempfile.mkstemp(prefix="agent-replay-", suffix=".json")
    os.close(fd)
    spec: dict[str, Any] = {**extra, "mode": mode, "cassette": os.path.abspath(cassette),
                            "result": result_path}
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = _hash_seed(mode, cassette, env)
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD_CODE, json.dumps(spec)], env=env)
        result = _read_result(result_path)
    finally:
        os.unlink(result_path)
    if result.get("boot_error"):  # the run could not start (a damaged cassette)
        raise ProgramNotRun(f"the entry point was not called: {result['boot_error']}")
    return proc.returncode, result


def _read_result(path: str) -> dict[str, Any]:
    """The child's result file as JSON ({} when it wrote none or it is unreadable)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        result: dict[str, Any] = json.loads(text) if text else {}
    except (OSError, ValueError):
        return {}
    return result
