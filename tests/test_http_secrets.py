"""Secrets never reach the disk by default; ``replay scan`` finds them when they do.

Twenty-two secrets of known shapes are planted in mixed-case request and
response headers, query strings, JSON bodies, SSE chunks (one split across
two chunks), tool results and exception text. Cassettes are checked as raw
decompressed bytes and as decoded events.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
import requests
import vcr

import replay
from replay._analysis.scan import scan_file
from replay._cli import main as cli
from tests._secret_samples import raw_bytes

USER_PATTERN = r"mycorp-[0-9]{10}"
S = {  # name -> secret, assembled here so that no secret-shaped literal is in the repository
    "auth": "Bear" + "er tok_live_abcdefghijklmnop0001",
    "xapikey": "plainkeyvalue-0002",
    "apikey": "azurekey-0003-xyz",
    "cookie": "session=cookie-secret-0004",
    "proxy": "Basic cHJveHk6c2VjcmV0MDAwNQ==",
    "setcookie": "sid=setcookie-secret-0006; Path=/",
    "resp_key": "resp-header-key-0007",
    "qs_key": "qs-secret-0008",
    "qs_token": "qs-token-0009",
    "google": "AI" + "zaSyA1234567890abcdefghijklmnopqrstuv",
    "openai_proj": "sk-" + "proj-AAAAbbbbCCCCdddd0011",
    "anthropic": "sk-" + "ant-api03-EEEEffffGGGG0012",
    "aws": "AK" + "IAIOSFODNN7EXAMP13",
    "github": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q014",
    "github_pat": "github_" + "pat_11ABCDEFG0123456789_abcdefghij0015",
    "sse_split": "sk-" + "splitacrosschunks0016xyz",
    "slack": "xo" + "xb-1234567890-0017abcdef",
    "tool_result": "sk-" + "toolresult0123456789-0018",
    "tool_bearer": "Bear" + "er toolbearer123456789-0019",
    "exc_text": "sk-" + "exception0123456789-0020",
    "exc_url": "exc-token-0021",
    "user": "mycorp-1234567022",
}

NEEDLE = {n: v.split("=", 1)[1].split(";")[0] if n in ("cookie", "setcookie") else v
          for n, v in S.items()}
"""What to look for: the secret part of each planted value."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path.startswith("/sse"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            split = S["sse_split"]
            for part in (f"data: {split[:10]}", f"{split[10:]} {S['slack']}\n\n", "data: end\n\n"):
                data = part.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                time.sleep(0.002)
            self.wfile.write(b"0\r\n\r\n")
            return
        body = json.dumps({"aws": S["aws"], "gh": S["github"], "pat": S["github_pat"],
                           "user": S["user"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", S["setcookie"])
        self.send_header("X-Api-Key", S["resp_key"])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET


@pytest.fixture
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@replay.tool
def lookup(query: str) -> dict[str, str]:
    return {"answer": f"found {S['tool_result']} and {S['tool_bearer']} / {S['user']}"}


@replay.tool
def explode(query: str) -> None:
    raise ValueError(f"tool failed with key {S['exc_text']}")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def agent(url: str, port: int, key: str = S["qs_key"], extra: bool = False) -> list[Any]:
    """One run touching every place a secret can hide."""
    out: list[Any] = []
    with httpx2.Client() as client:
        r = client.post(f"{url}/echo?api_key={key}&x=1&access_token={S['qs_token']}"
                        f"&KEY={S['google']}",
                        headers={"AuThOrIzAtIoN": S["auth"], "X-API-KEY": S["xapikey"],
                                 "Api-Key": S["apikey"], "cookie": S["cookie"],
                                 "Proxy-Authorization": S["proxy"]},
                        json={"note": S["openai_proj"], "nested": {"k": S["anthropic"]}})
        out.append(r.json())
        with client.stream("GET", url + "/sse") as s:
            out.append([bytes(c) for c in s.iter_raw()])
    out.append(lookup("q"))
    try:
        explode("q")
    except ValueError as exc:
        out.append(str(exc))
    try:
        requests.get(f"http://127.0.0.1:{port}/nothing?token={S['exc_url']}", timeout=2)
    except requests.ConnectionError as exc:
        out.append(type(exc).__name__)
    out.append(requests.get(url + "/plain", headers={"Cookie": S["cookie"]}, timeout=5).json())
    if extra:  # a call the first recording did not make: appended by new-events
        out.append(httpx2.get(f"{url}/more?token={S['qs_token']}",
                              headers={"X-Api-Key": S["xapikey"]}).json())
    return out


def leaked(path: Path, names: list[str]) -> list[str]:
    """Names of the secrets found in the raw bytes or the decoded events."""
    raw = raw_bytes(path)
    cassette = replay.load(path)
    decoded = repr(cassette.header) + "".join(
        repr(e.to_map()) + b"".join(c.data for c in e.chunks).decode("latin-1")
        for e in cassette.events)  # joined chunks: a secret split over two is still one
    return [n for n in names if NEEDLE[n].encode() in raw or NEEDLE[n] in decoded]


DEFAULT_SHAPES = [n for n in S if n != "user"]


def test_default_cassettes_hold_no_secret_and_replay_still_matches(server: str,
                                                                  tmp_path: Path) -> None:
    assert len(S) >= 20
    path = tmp_path / "default.replay"
    port = closed_port()
    for attempt in range(2):  # re-recording over the same path goes through the writer too
        with replay.record(path):
            recorded = agent(server, port)
        assert leaked(path, DEFAULT_SHAPES) == [], attempt
    assert S["user"] in raw_bytes(path).decode("latin-1")  # not a known shape by default
    # redacted fields never decide a match: a rotated key replays the same run
    with replay.play(path, unused="fail"):
        again = agent(server, port, key="another-rotated-key")
    assert len(again) == len(recorded) and again[-1]["aws"] == "*" * len(S["aws"])
    assert cli(["scan", str(path)]) == 0


def test_new_events_runs_append_through_the_redactor(server: str, tmp_path: Path) -> None:
    path = tmp_path / "append.replay"
    port = closed_port()
    with replay.record(path):
        agent(server, port)
    with replay.run(path, "new-events") as run:
        agent(server, port, extra=True)
    assert run.result is not None and run.result.live >= 1
    events = [e for e in replay.load(path).events if e.channel == "http"]
    assert any(str(e.request["url"]).startswith(server + "/more")  # type: ignore[index]
               for e in events)
    assert leaked(path, DEFAULT_SHAPES) == []


def test_user_patterns_and_callback(server: str, tmp_path: Path) -> None:
    path = tmp_path / "custom.replay"
    seen: list[int] = []

    def callback(ev: replay.Event) -> replay.Event:
        seen.append(ev.seq)
        return ev

    redactor = replay.Redactor.with_patterns([USER_PATTERN], callback=callback)
    with replay.record(path, redact=redactor):
        agent(server, closed_port())
    assert leaked(path, list(S)) == []
    assert sorted(seen) == sorted(e.seq for e in replay.load(path).events)


def test_scan_finds_every_planted_secret(server: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plain.replay"
    with replay.record(path, redact=False):
        agent(server, closed_port())
    assert sorted(leaked(path, list(S))) == sorted(S)  # all there, as asked
    findings, damage = scan_file(path, patterns=[USER_PATTERN])
    assert damage is None
    values = [f.value for f in findings]
    missed = [n for n in S if not any(NEEDLE[n] in v for v in values)]
    assert missed == []
    kinds = {f.kind for f in findings}
    assert {"header:authorization", "header:set-cookie", "param:api_key", "aws-access-key",
            "anthropic-key", "slack-token", "github-token"} <= kinds
    capsys.readouterr()
    assert cli(["scan", str(path), "--pattern", USER_PATTERN]) == 1
    out = capsys.readouterr().out
    assert S["aws"] not in out and S["xapikey"] not in out  # previews only
    assert cli(["scan", str(path), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["findings"]) >= 20


def vcr_agent(url: str) -> list[Any]:
    return [requests.get(url + "/plain?page=1", headers={"X-Api-Key": S["xapikey"]},
                         timeout=5).json(),
            requests.post(url + "/echo", json={"q": 1}, timeout=5).json()]


@pytest.mark.parametrize("serializer", ["yaml", "json"])
def test_import_vcr_cassette_and_replay_with_any_client(serializer: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    source = tmp_path / f"cassette.{serializer}"
    with vcr.VCR(serializer=serializer).use_cassette(str(source)):
        recorded = vcr_agent(url)
    srv.shutdown()
    srv.server_close()
    assert cli(["scan", str(source)]) == 1  # vcrpy kept the header; scan reads its files too
    out = tmp_path / "imported.replay"
    assert cli(["import-vcr", str(source), "-o", str(out)]) == 0
    assert leaked(out, ["xapikey", "setcookie", "resp_key", "aws", "github"]) == []
    events = sorted(replay.load(out).events, key=lambda e: e.seq)
    assert [e.request["method"] for e in events] == ["GET", "POST"]  # type: ignore[index]
    with replay.play(out, unused="fail"):
        assert vcr_agent(url) == [
            {**recorded[0], "aws": "*" * len(S["aws"]), "gh": "*" * len(S["github"]),
             "pat": "*" * len(S["github_pat"])},
            {**recorded[1], "aws": "*" * len(S["aws"]), "gh": "*" * len(S["github"]),
             "pat": "*" * len(S["github_pat"])}]
    with replay.play(out, unused="fail"):  # an httpx client is served the same events
        r = httpx2.get(url + "/plain?page=1")  # (fresh clients: a cookie jar reads the clock)
        assert r.json()["user"] == S["user"] and r.headers["set-cookie"] == "[REDACTED]"
        httpx2.post(url + "/echo", json={"q": 1})
    capsys.readouterr()
    assert cli(["import-vcr", str(tmp_path / "missing.yaml"), "-o", str(out)]) == 2


def test_scan_reports_damage_and_unreadable_files(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("just: [text\n")
    assert cli(["scan", str(bad)]) == 2
    assert "cannot scan" in capsys.readouterr().err
    assert sys.modules["replay._analysis.scan"] is not None
