"""Start-up cost (issue 16): ``import replay`` and the ``replay`` command import
only what they use, and nothing is lost by it.

``replay/__init__.py`` resolves its public names on first use (PEP 562), the CLI
imports only the module of the command it runs, and the modules that extend every
session when imported (breakpoints, the drift fingerprint and probe) are imported
when a session starts. No timing here: bench/bench_scale.py times it.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import pathlib
import subprocess
import sys

import pytest

import replay
from replay import _cli

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _modules_after(code: str, *args: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``, which must end
    by printing nothing to stdout (the list is printed after it)."""
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                         text=True, check=True, cwd=str(ROOT))
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _loaded(modules: set[str], *packages: str) -> list[str]:
    return sorted(m for m in modules for p in packages if m == p or m.startswith(p + "."))


HEAVY = ("textual", "rich", "httpx", "httpcore", "vcr", "yaml", "boto3", "botocore",
         "opentelemetry", "starlette", "anyio", "asyncio", "sqlite3", "numpy", "mcp",
         "zstandard", "msgpack", "crc32c", "replay._analysis", "replay._capture",
         "replay._service", "replay._cli", "replay._pytest", "replay._cassette",
         "replay._runs.api", "replay._runs.store", "tui")


def test_import_replay_imports_no_layer_and_no_third_party_package() -> None:
    modules = _modules_after("import replay")
    assert _loaded(modules, *HEAVY) == []
    assert _loaded(modules, "replay") == ["replay", "replay._runs", "replay._runs.extensions"]


@pytest.mark.parametrize("name", replay.__all__)
def test_every_public_name_resolves_to_its_object(name: str) -> None:
    value = getattr(replay, name)
    module = importlib.import_module(replay._WHERE[name])
    assert value is getattr(module, replay._RENAMED.get(name, name))
    assert name in dir(replay)


def test_from_import_and_unknown_names() -> None:
    from replay import EventLog, load, record, verify

    assert load is replay.read_cassette
    assert record is replay.record and verify is replay.verify
    assert EventLog.__name__ == "EventLog"
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        replay.nonexistent  # noqa: B018 - the lookup is the test
    with pytest.raises(ImportError):
        from replay import nonexistent  # type: ignore[attr-defined]  # noqa: F401


def test_all_and_lazy_table_and_type_checking_block_agree() -> None:
    """What mypy and IDEs see (the TYPE_CHECKING imports) is what runs."""
    tree = ast.parse((ROOT / "replay" / "__init__.py").read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If)
                 and isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING")
    seen = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.module is not None
        for alias in node.names:
            seen[alias.asname or alias.name] = (node.module, alias.name)
    lazy = {name: (module, replay._RENAMED.get(name, name))
            for name, module in replay._WHERE.items()}
    assert seen == lazy
    assert sorted(replay.__all__) == sorted(lazy)


def test_a_session_started_without_the_facade_names_has_every_extension(
        tmp_path: pathlib.Path) -> None:
    """The fingerprint in a new cassette's header and the break_at / probe hooks do not
    depend on which public names happened to be used before the session."""
    path = tmp_path / "run.replay"
    code = ("import sys\nfrom replay._runs.api import record\n"
            "with record(sys.argv[1]):\n    pass\n")
    modules = _modules_after(code, str(path))
    assert {"replay._analysis.fingerprint", "replay._analysis.probe",
            "replay._runs.breakpoint"} <= modules
    assert "fingerprint" in replay.read_header(path).meta


def test_each_command_is_added_by_the_module_commands_names() -> None:
    for module in _cli.COMMAND_MODULES:
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(module).register(sub)
        assert sorted(sub.choices) == sorted(c for c, m in _cli.COMMANDS.items() if m == module)
    full = _cli.build_parser()
    choices = next(a for a in full._actions if a.dest == "subcommand").choices
    assert choices is not None and list(choices) == list(_cli.COMMANDS)


@pytest.mark.parametrize(("argv", "command"), [
    (["show", "x.replay"], "show"),
    (["--store", "s3://b/p", "show", "last"], "show"),
    (["--store=dir", "verify", "x"], "verify"),
    (["--sto", "dir", "ls", "--failed"], "ls"),
    (["show", "--store", "x", "last"], "show"),
    (["--help"], None),
    (["-h", "show"], None),  # the top-level help, with every command
    ([], None),
    (["bogus"], None),
    (["--store"], None),
])
def test_command_named(argv: list[str], command: str | None) -> None:
    assert _cli.command_named(argv) == command


def test_help_and_errors_still_see_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _cli.main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in _cli.COMMANDS)
    with pytest.raises(SystemExit) as exc:
        _cli.main(["bogus"])
    assert exc.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


def test_replay_show_imports_only_what_show_needs(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run.replay"
    with replay.record(path):
        import random
        random.random()
    code = ("import io, sys, contextlib\nfrom replay._cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    code = main(['show', sys.argv[1]])\n"
            "assert code == 0 and out.getvalue().startswith('#0 '), out.getvalue()\n")
    modules = _modules_after(code, str(path))
    assert _loaded(modules, "textual", "httpx", "asyncio", "sqlite3", "replay._capture",
                   "replay._runs.store", "replay._runs.api", "replay._service",
                   "replay._analysis.drift", "replay._analysis.fingerprint",
                   "replay._analysis.steps", "replay._cli.diff", "replay._cli.run",
                   "replay._cli.tui") == []
