"""``replay ls`` / ``replay pull``, ``--store``, and ``last`` / run ids in every command
that takes a cassette (issue 17)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import replay
from replay._cli import main
from replay._runs.store import LocalStore, RunRow, RunStatus, new_run_id

T0 = 1_780_000_000.0


def _store(root: Path) -> list[RunRow]:
    store = LocalStore(str(root))
    rows = [RunRow(id=new_run_id(T0 + i), entry=e, start=T0 + i, duration=0.1, status=st,
                   error=err, models=m, tools=t, tags=tg, input_tokens=3, output_tokens=2)
            for i, (e, st, err, m, t, tg) in enumerate([
                ("svc:answer", RunStatus.OK, None, ("gpt-4o-mini",), ("lookup",), ("prod",)),
                ("POST /ask/{user}", RunStatus.FAILED, "HTTP 500", ("claude-x",), (), ()),
            ])]
    for row in rows:
        path = store.new_run(row.id)
        with replay.record(path):
            replay.tool(lambda: 1, name="lookup")()
        store.put(path, row)
    return rows


def test_ls_filters_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    rows = _store(tmp_path / ".replay" / "runs")
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    assert out.index(rows[1].id) < out.index(rows[0].id) and "HTTP 500" in out
    for args, want in ((["--failed"], [rows[1]]), (["--entry", "POST"], [rows[1]]),
                       (["--model", "gpt-4o"], [rows[0]]), (["--tool", "lookup"], [rows[0]]),
                       (["--tag", "prod"], [rows[0]]), (["--since", "2026-01-01"], rows[::-1]),
                       (["--since", "1h"], [])):
        assert main(["ls", "--json", *args]) == 0
        got = json.loads(capsys.readouterr().out)
        assert [r["id"] for r in got] == [r.id for r in want], args
    assert main(["ls", "--since", "yesterday"]) == 2
    assert "since takes a span" in capsys.readouterr().err


def test_store_option_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    rows = _store(tmp_path / "elsewhere")
    assert main(["ls"]) == 2
    assert "no run store at .replay/runs" in capsys.readouterr().err
    for argv in (["--store", "elsewhere", "ls", "--json"], ["ls", "--store", "elsewhere",
                                                            "--json"]):
        assert main(argv) == 0
        assert len(json.loads(capsys.readouterr().out)) == 2
    monkeypatch.setenv("REPLAY_STORE", str(tmp_path / "elsewhere"))
    assert main(["pull", "last", "-o", "got.replay"]) == 0
    assert (tmp_path / "got.replay").read_bytes() == (
        tmp_path / "elsewhere" / f"{rows[1].id}.replay").read_bytes()
    assert main(["pull", rows[0].id[:17]]) == 0
    assert (tmp_path / f"{rows[0].id}.replay").is_file()
    assert main(["pull", "19990101-000000"]) == 2
    assert "no run 19990101-000000" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["show", "REF"], ["show", "--json", "REF"], ["verify", "REF"], ["diff", "last~1", "REF"],
    ["drift", "REF"], ["fork", "REF", "--at", "0", "-o", "f.replay", "--", "python", "-c", "0"],
    ["play", "REF", "--", "python", "-c", "0"], ["export", "jsonl", "REF"],
])
def test_last_and_ids_work_wherever_a_cassette_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    rows = _store(tmp_path / ".replay" / "runs")
    for ref in ("last", rows[1].id, rows[1].id[:17]):
        code = main([ref if a == "REF" else a for a in argv])
        err = capsys.readouterr().err
        assert "no such cassette" not in err and "no run" not in err, (ref, err)
        assert code in (0, 1), (ref, err)  # ran on the stored cassette (1: diff/drift found)
    assert main([("last~5" if a == "REF" else a) for a in argv]) == 2
    assert "no run last~5" in capsys.readouterr().err


def test_tui_resolves_run_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from replay._cli.runs import resolve_args
    monkeypatch.chdir(tmp_path)
    rows = _store(tmp_path / ".replay" / "runs")
    from replay._cli import build_parser
    args = build_parser().parse_args(["tui", "last", rows[0].id])
    resolve_args(args)
    assert args.cassette.endswith(f"{rows[1].id}.replay")
    assert args.other.endswith(f"{rows[0].id}.replay")
