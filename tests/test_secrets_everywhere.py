"""Issue 12: with default settings no planted secret reaches the disk or the screen.

The plants (tests/_secret_samples.py, all built at run time): every shape the
redactor knows (OpenAI, Anthropic, Stripe, AWS, GitHub, Slack, Google, JWT,
PEM, ...), ``password`` and ``client_secret`` fields, a form-encoded
``client_secret=``, a custom auth header, an ``api_key`` query parameter, a
key used as a map key, an AWS secret beside its id, and ``--api-key`` /
``--password`` on the recorded program's command line. They go through every
write path (``replay record``, ``replay.record``, the pytest plugin, ``replay
fork``, ``replay edit``, ``replay import-vcr``); each cassette is searched as
raw file bytes and as its decompressed stream. ``show``, ``diff``, ``edit``
and ``play`` print none of them, even for a cassette written with
``redact=False``, and ``replay scan`` fails on such a cassette naming every shape.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import vcr

import replay
from replay._analysis.scan import scan_file
from tests._secret_samples import (
    PROGRAM,
    Plants,
    agent,
    benign,
    file_survivors,
    serve,
    survivors,
)

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
PLANTS = Plants()
NEEDLES = PLANTS.needles()
NEEDLES_EDIT = {**NEEDLES, "edit": PLANTS.edit_secret}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    srv, address = serve()
    yield address
    srv.shutdown()
    srv.server_close()


def cli(*args: str, cwd: Path, url: str) -> subprocess.CompletedProcess[str]:
    """``replay ARGS`` as a user runs it (the recorded program finds the server in env)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PLANT_URL=url)
    return subprocess.run([sys.executable, "-m", "replay._cli", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=180)


class Runs:
    """The cassettes of every write path, made once for the module."""

    def __init__(self, base: Path, url: str) -> None:
        self.base, self.url = base, url
        self.prog = base / "prog.py"
        self.prog.write_text(PROGRAM)
        self.outputs: list[str] = []  # stdout and stderr of every command run
        self._made: dict[str, Path] = {}

    def replay(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = cli(*args, cwd=self.base, url=self.url)
        self.outputs += [done.stdout, done.stderr]
        if ok:
            assert done.returncode == 0, done.stderr[-3000:]
        return done

    def program(self) -> list[str]:
        return ["python", str(self.prog), *PLANTS.argv()]

    def get(self, name: str) -> Path:
        if name not in self._made:
            self._made[name] = getattr(self, "_" + name.replace("-", "_"))(self.base / name)
        return self._made[name]

    def _record_cli(self, out: Path) -> Path:
        self.replay("record", "-o", str(out), "--", *self.program())
        return out

    def _record_cli_raw(self, out: Path) -> Path:
        self.replay("record", "--no-redact", "-o", str(out), "--", *self.program())
        return out

    def _api(self, out: Path, redact: bool = True) -> Path:
        argv = sys.argv
        sys.argv = ["agent.py", *PLANTS.argv()]
        try:
            with replay.record(out, redact=redact):
                agent(self.url)
        finally:
            sys.argv = argv
        return out

    def _api_raw(self, out: Path) -> Path:
        return self._api(out, redact=False)

    def _fork(self, out: Path) -> Path:
        self.replay("fork", str(self.get("record-cli")), "--at", "1", "-o", str(out), "--",
                    *self.program())
        return out

    def _fork_raw_parent(self, out: Path) -> Path:
        self.replay("fork", str(self.get("api-raw")), "--at", "1", "--live", "-o", str(out),
                    "--", *self.program())
        return out

    def _edit(self, out: Path) -> Path:
        parent = self.get("record-cli")
        self.replay("edit", str(parent), "--event", str(_tool_seq(parent)), "--set",
                    f"password={PLANTS.edit_secret}", "-o", str(out))
        return out

    def _edit_raw_parent(self, out: Path) -> Path:
        parent = self.get("api-raw")
        self.replay("edit", str(parent), "--event", str(_tool_seq(parent)), "--set",
                    f"note={PLANTS.edit_secret}", "-o", str(out))
        return out

    def _import_vcr(self, out: Path) -> Path:
        source = self.base / "vcr.yaml"
        with vcr.VCR().use_cassette(str(source)):
            requests.post(f"{self.url}/echo?api_key={PLANTS.query_key}", json=PLANTS.document(),
                          headers={"Authorization": PLANTS.shapes["bearer-token"],
                                   "X-Custom-Auth-Token": PLANTS.header_token}, timeout=10)
            requests.post(f"{self.url}/token", timeout=10,
                          data={"grant_type": "client_credentials",
                                "client_secret": PLANTS.form_secret})
        assert len(survivors(NEEDLES, source.read_text())) >= 30  # vcrpy kept them all
        self.replay("import-vcr", str(source), "-o", str(out))
        return out


def _tool_seq(path: Path) -> int:
    return next(e.seq for e in replay.load(path).events if e.channel == "tool:plant_lookup")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, url: str) -> Runs:
    return Runs(tmp_path_factory.mktemp("secrets"), url)


def test_the_plants_are_many_and_varied() -> None:
    assert len(NEEDLES) >= 30 and len(PLANTS.shapes) >= 30
    assert len(set(NEEDLES.values())) == len(NEEDLES)


@pytest.mark.parametrize("path", ["record-cli", "api", "fork", "fork-raw-parent", "edit",
                                  "edit-raw-parent", "import-vcr"])
def test_no_planted_secret_survives_a_write_path(runs: Runs, path: str) -> None:
    cassette = runs.get(path)
    assert file_survivors(NEEDLES_EDIT, cassette) == []
    findings, damage = scan_file(cassette)
    assert damage is None and [str(f) for f in findings] == []
    assert runs.replay("scan", str(cassette)).returncode == 0


@pytest.mark.parametrize("path", ["record-cli", "api", "fork"])
def test_the_fields_that_only_look_like_secrets_survive(runs: Runs, path: str) -> None:
    cassette = replay.load(runs.get(path))
    tool = next(e for e in cassette.events if e.channel == "tool:plant_lookup")
    assert benign(tool.response) == benign(PLANTS.document())
    http = next(e for e in cassette.events if e.channel == "http")
    body = json.loads(b"".join(c.data for c in http.chunks))
    assert benign(body) == benign(PLANTS.document())
    assert replay.read_header(runs.get(path)).argv[-4::2] == ("--api-key", "--password")


def test_the_header_argv_is_redacted_before_it_is_written(runs: Runs) -> None:
    for path in ("record-cli", "api", "fork"):
        header = replay.read_header(runs.get(path))
        assert header.argv[-4:] == ("--api-key", "[REDACTED]", "--password", "[REDACTED]")
        assert header.meta["redaction"] == 2


def test_no_planted_secret_survives_the_pytest_plugin(pytester: pytest.Pytester, url: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANT_URL", url)
    pytester.makepyfile(test_plants='''
        import os

        import pytest

        from tests._secret_samples import agent


        @pytest.mark.replay
        def test_agent(replay_run):
            agent(os.environ["PLANT_URL"])
    ''')
    result = pytester.runpytest_inprocess(
        "-p", "no:textual-snapshot", "-W", "ignore::pytest.PytestAssertRewriteWarning",
        "-o", "asyncio_default_fixture_loop_scope=function", "--replay-mode=record")
    result.assert_outcomes(passed=1)
    cassette = pytester.path / "cassettes" / "test_plants" / "test_agent.replay"
    assert file_survivors(NEEDLES, cassette) == []
    assert scan_file(cassette)[0] == []
    assert survivors(NEEDLES, result.stdout.str(), result.stderr.str()) == []


@pytest.mark.parametrize("path", ["api-raw", "record-cli-raw"])
def test_scan_fails_on_a_raw_cassette_naming_every_shape(runs: Runs, path: str) -> None:
    cassette = runs.get(path)
    assert len(file_survivors(NEEDLES, cassette)) >= 30  # redact=False keeps them, as asked
    findings, _ = scan_file(cassette)
    labels = PLANTS.labels()
    missed = [name for name, secret in NEEDLES.items()
              if not any(f.kind == labels[name] and secret in f.value for f in findings)]
    assert missed == []
    assert any(f.where.endswith("{key}") for f in findings)  # a secret used as a map key
    assert {f.where for f in findings if f.seq is None} >= {"header.argv[2]", "header.argv[4]"}
    done = runs.replay("scan", str(cassette), ok=False)
    assert done.returncode == 1
    assert set(labels.values()) <= set(done.stdout.split())
    assert survivors(NEEDLES, done.stdout, done.stderr) == []  # masked previews only


def test_show_diff_edit_and_play_print_no_secret(runs: Runs) -> None:
    redacted, raw = str(runs.get("record-cli")), str(runs.get("api-raw"))
    runs.get("edit")
    runs.get("edit-raw-parent")
    for cassette in (redacted, raw):
        runs.replay("show", cassette)
        runs.replay("show", "--json", cassette)
        runs.replay("show", "--steps", cassette)
        runs.replay("show", "--steps", "--json", cassette)
        for step in replay.steps(cassette):  # what each model call read
            if step.event is not None:
                runs.replay("show", "--context", str(step.seq), cassette)
                runs.replay("show", "--context", str(step.seq), "--json", cassette)
    runs.replay("diff", raw, redacted, ok=False)
    runs.replay("diff", "--json", "--all", raw, str(runs.get("api")), ok=False)
    runs.replay("play", redacted, "--", *runs.program())
    diverged = runs.replay("play", raw, "--", *runs.program(), ok=False)
    assert diverged.returncode != 0 and "diverged" in diverged.stderr
    assert len(runs.outputs) >= 20
    assert survivors(NEEDLES_EDIT, *runs.outputs) == []


def test_the_tui_shows_a_raw_run_redacted(runs: Runs) -> None:
    from tui.app import ReplayApp
    raw = runs.get("api-raw")
    app = ReplayApp(str(raw))
    shown = app._read(str(raw))
    text = repr(shown.header) + "".join(
        repr(e) + b"".join(c.data for c in e.chunks).decode("latin-1") for e in shown.events)
    assert survivors(NEEDLES, text) == []


PLANTING_FILES = ("tests/_secret_samples.py", "tests/test_secrets_everywhere.py",
                  "tests/test_redact.py", "tests/test_http_secrets.py")


@pytest.mark.parametrize("name", PLANTING_FILES)
def test_the_planting_tests_hold_no_secret_shaped_literal(name: str) -> None:
    from replay._cassette.redact import DEFAULT
    text = (ROOT / name).read_text()
    shapes = [text[a:b] for a, b, kind in DEFAULT.find(text)
              if not kind.startswith(("field:", "param:"))]
    assert shapes == []
