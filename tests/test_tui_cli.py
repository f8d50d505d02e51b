"""``replay tui``: argument handling, drift findings, and what reaches the app."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from replay import _cli
from replay._cli import tui as _cli_tui
from tests import tui_samples as samples


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record ReplayApp.run instead of taking over the terminal."""
    from tui.app import ReplayApp

    seen: list[Any] = []

    def run(self: ReplayApp, *args: Any, **kwargs: Any) -> None:
        seen.append(self)

    monkeypatch.setattr(ReplayApp, "run", run)
    return seen


def test_tui_is_a_replay_command() -> None:
    args = _cli.build_parser().parse_args(["tui", "a.replay", "b.replay", "--at", "error"])
    assert (args.cassette, args.other, args.at) == ("a.replay", "b.replay", "error")
    assert args.func is _cli_tui.cmd_tui


def test_at_takes_a_number_or_a_flag_word() -> None:
    assert _cli_tui.parse_at("12") == 12
    assert _cli_tui.parse_at("#12") == 12
    assert _cli_tui.parse_at("drift") == "drift"
    assert _cli_tui.parse_at(None) is None
    with pytest.raises(ValueError, match="event number or one of"):
        _cli_tui.parse_at("soon")


def test_opens_the_app_with_both_runs_and_the_start(tmp_path: pathlib.Path,
                                                     launched: list[Any]) -> None:
    a = samples.write(tmp_path / "a.replay", samples.agent_run())
    b = samples.write(tmp_path / "b.replay", samples.diverged_run())
    assert _cli.main(["tui", a, b, "--at", "7"]) == 0
    app = launched[0]
    assert (app.source, app.other_source, app.start_at) == (a, b, 7)


def test_drift_findings_become_flags_and_notes(tmp_path: pathlib.Path,
                                               launched: list[Any]) -> None:
    a = samples.write(tmp_path / "a.replay", samples.agent_run())
    report = tmp_path / "drift.json"
    report.write_text(json.dumps({"schema": "agent-replay/drift/1", "findings": [
        {"kind": "python", "severity": "info", "seq": None, "message": "3.11 -> 3.12"},
        {"kind": "system_prompt", "severity": "warning", "seq": 3,
         "message": "the system prompt of #3 changed"},
        {"kind": "model", "severity": "error", "seq": 3, "message": "gpt-4o-mini -> gpt-5"},
    ]}))
    assert _cli.main(["tui", a, "--findings", str(report), "--at", "drift"]) == 0
    app = launched[0]
    assert app.extra_flags == {3: {"drift"}}
    assert app.notes == {3: ["drift (warning, system_prompt): the system prompt of #3 changed",
                             "drift (error, model): gpt-4o-mini -> gpt-5"]}
    assert app.start_at == "drift"


def test_bad_arguments_exit_2_with_a_message(tmp_path: pathlib.Path, launched: list[Any],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    a = samples.write(tmp_path / "a.replay", samples.agent_run())
    assert _cli.main(["tui", str(tmp_path / "missing.replay")]) == 2
    assert "no such cassette" in capsys.readouterr().err
    assert _cli.main(["tui", a, "--at", "later"]) == 2
    assert "--at takes" in capsys.readouterr().err
    junk = tmp_path / "junk.json"
    junk.write_text('{"findings": []}')
    assert _cli.main(["tui", a, "--findings", str(junk)]) == 2
    assert "not a 'replay drift --json' report" in capsys.readouterr().err
    assert not launched


def test_import_replay_does_not_load_textual() -> None:
    import subprocess
    import sys

    code = ("import sys, replay, replay._cli; replay._cli.build_parser(); "
            "print(any(m == 'textual' or m.startswith('textual.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(pathlib.Path(__file__).parent.parent))
    assert out.stdout.strip() == "False"
