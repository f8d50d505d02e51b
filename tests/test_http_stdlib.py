"""``http.client`` and ``urllib.request``: recorded as ``http`` events, replayed with no
socket, the program seeing the real ``HTTPResponse``. Against a loopback server that is
stopped before every replay."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3

import replay

SECRET = "sk-proj-" + "Q7f3" * 10


class _Handler(BaseHTTPRequestHandler):
    """``/json`` (echoes the method and body), ``/sse?n=`` (chunked SSE),
    ``/chunked`` (a chunked JSON body in pieces), ``/missing`` (404 with a JSON body),
    ``/empty`` (204)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Server

    def log_message(self, *args: Any) -> None:
        return

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunked(self, pieces: list[bytes], ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for p in pieces:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding") == "chunked":
            body = _read_chunked(self.rfile)
        with self.server.lock:
            self.server.count += 1
            n = self.server.count
        path = self.path.split("?")[0]
        if path == "/sse":
            count = int(self.path.rsplit("=", 1)[1])
            self._chunked([f"data: {{\"i\": {i}, \"n\": {n}}}\n\n".encode() for i in range(count)]
                          + [b"data: [DONE]\n\n"], "text/event-stream")
        elif path == "/chunked":
            self._chunked([b'{"parts": [', b'"a", "b",', b' "c"], "n": %d}' % n],
                          "application/json")
        elif path == "/missing":
            self._send(404, json.dumps({"error": "no such city", "n": n}).encode())
        elif path == "/empty":
            self.send_response(204)
            self.end_headers()
        else:
            self._send(200, json.dumps({"method": self.command, "path": self.path, "n": n,
                                        "body": body.decode("latin-1")}).encode())

    do_POST = do_GET
    do_PUT = do_GET


def _read_chunked(rfile: Any) -> bytes:
    out = b""
    while True:
        size = int(rfile.readline().strip(), 16)
        if not size:
            rfile.readline()
            return out
        out += rfile.read(size)
        rfile.readline()


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.count = 0
        self.connections = 0
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.stop()


def http_events(path: Path) -> list[replay.Event]:
    return sorted((e for e in replay.load(path).events if e.channel == "http"),
                  key=lambda e: e.seq)


def record_then_replay(path: Path, server: Server, agent: Callable[[], Any],
                       plays: int = 3) -> Any:
    """Record ``agent`` once, stop the server, replay it ``plays`` times: each replay
    returns what the recording did, consumes every event and opens no socket."""
    with replay.record(path):
        recorded = agent()
    server.stop()
    for _ in range(plays):
        with replay.play(path, unused="fail") as run:
            assert agent() == recorded
        assert run.result is not None and run.result.ok, run.result
    return recorded


def test_urlopen_get_and_json_post_replay_offline(tmp_path: Path, server: Server) -> None:
    path = tmp_path / "urlopen.replay"

    def agent() -> list[Any]:
        out: list[Any] = []
        with urllib.request.urlopen(server.url + "/json?b=2&a=1", timeout=5) as r:
            out.append((type(r), r.status, r.reason, r.headers["Content-Type"], r.read()))
        req = urllib.request.Request(server.url + "/json", method="POST",
                                     data=json.dumps({"city": "Paris", "units": "C"}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            out.append((isinstance(r, http.client.HTTPResponse), json.loads(r.read())))
        return out

    recorded = record_then_replay(path, server, agent)
    assert recorded[0][0] is http.client.HTTPResponse
    assert recorded[1] == (True, {"method": "POST", "path": "/json", "n": 2,
                                  "body": '{"city": "Paris", "units": "C"}'})
    events = http_events(path)
    assert [(e.request["method"], e.request["url"], e.meta["client"])  # type: ignore[index]
            for e in events] == [
        ("GET", f"{server.url}/json?a=1&b=2", "http.client"),
        ("POST", f"{server.url}/json", "http.client")]
    assert events[1].request["body"] == {"city": "Paris", "units": "C"}  # type: ignore[index]
    assert events[0].response["status"] == 200  # type: ignore[index]
    assert "head_ns" in events[0].meta and "stream" not in events[0].meta


def test_sse_read_line_by_line_keeps_its_lines_and_replays_them(tmp_path: Path,
                                                                server: Server) -> None:
    path = tmp_path / "sse.replay"

    def agent() -> list[Any]:
        lines: list[bytes] = []
        with urllib.request.urlopen(server.url + "/sse?n=4", timeout=5) as r:
            for line in r:  # iteration: readline
                lines.append(line)
                if line.startswith(b"data: [DONE]"):
                    break
            lines.append(r.readline())  # the blank line after [DONE]
            lines.append(r.read())  # the end: b""
        return lines

    recorded = record_then_replay(path, server, agent)
    assert recorded[0] == b'data: {"i": 0, "n": 1}\n' and recorded[-3:] == [
        b"data: [DONE]\n", b"\n", b""]
    ev = http_events(path)[0]
    assert [c.data for c in ev.chunks] == recorded[:-1]  # one chunk per line read
    assert "stream" not in ev.meta  # read to its end
    assert ev.chunks[-1].at_ns >= ev.chunks[0].at_ns


def test_chunked_reads_of_every_kind(tmp_path: Path, server: Server) -> None:
    """read(n), read1, readinto, peek and read() on a chunked body: the same bytes and
    the same boundaries on replay."""
    path = tmp_path / "chunked.replay"

    def agent() -> list[Any]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", "/chunked")
        r = conn.getresponse()
        out: list[Any] = [r.chunked, r.read(3), r.read1(100)]
        buf = bytearray(4)
        out.append((r.readinto(buf), bytes(buf)))
        out.append(r.peek(1)[:1])
        out.append(r.read())
        out.append(r.isclosed())
        conn.close()
        return out

    recorded = record_then_replay(path, server, agent)
    assert recorded[0] is True and recorded[1] == b'{"p'
    assert b"".join([recorded[1], recorded[2], recorded[3][1], recorded[5]]) == \
        b'{"parts": ["a", "b", "c"], "n": 1}'
    assert recorded[-1] is True


def test_keep_alive_reuses_one_connection_and_replays_without_one(tmp_path: Path,
                                                                  server: Server) -> None:
    path = tmp_path / "keepalive.replay"
    socks: list[Any] = []

    def agent() -> list[Any]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        out: list[Any] = []
        for i in range(3):
            conn.request("PUT", f"/json?i={i}", body=f"item {i}",
                         headers={"X-Api-Key": SECRET})
            r = conn.getresponse()
            out.append((r.status, r.will_close, r.read()))
            socks.append(conn.sock)
        conn.close()
        return out

    record_then_replay(path, server, agent)
    assert server.connections == 1  # live: one connection for the three requests
    assert len({id(s) for s in socks[:3]}) == 1
    assert all(not isinstance(s, socket.socket) for s in socks[3:])  # replay: no socket
    assert [e.request["body"] for e in http_events(path)] == [  # type: ignore[index]
        b"item 0", b"item 1", b"item 2"]


def test_an_error_status_raises_the_same_httperror(tmp_path: Path, server: Server) -> None:
    path = tmp_path / "404.replay"

    def agent() -> list[Any]:
        out: list[Any] = []
        try:
            urllib.request.urlopen(server.url + "/missing", timeout=5)
        except urllib.error.HTTPError as exc:
            out.append((type(exc), exc.code, exc.reason, exc.headers["Content-Type"],
                        exc.read()))
        try:
            urllib.request.urlopen(server.url + "/missing?unread", timeout=5)
        except urllib.error.HTTPError as exc:  # its body never read
            out.append(exc.code)
        with urllib.request.urlopen(server.url + "/empty", timeout=5) as r:
            out.append((r.status, r.read()))
        return out

    recorded = record_then_replay(path, server, agent)
    assert recorded[0][:2] == (urllib.error.HTTPError, 404)
    assert json.loads(recorded[0][4]) == {"error": "no such city", "n": 1}
    assert recorded[1:] == [404, (204, b"")]
    events = http_events(path)
    assert [e.response["status"] for e in events] == [404, 404, 204]  # type: ignore[index]
    assert events[1].meta["stream"] == "closed-early" and not events[1].chunks


def test_a_refused_connection_replays_as_the_same_exception(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    path = tmp_path / "refused.replay"

    def agent() -> list[Any]:
        out: list[Any] = []
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/x", timeout=5)
        except urllib.error.URLError as exc:
            out.append((type(exc), type(exc.reason), exc.reason.errno))  # type: ignore[union-attr]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("POST", "/y", body=b"{}")
        except ConnectionRefusedError as exc:
            out.append((type(exc), exc.errno))
        conn.close()
        return out

    with replay.record(path):
        recorded = agent()
    for _ in range(2):
        with replay.play(path, unused="fail"):
            assert agent() == recorded
    assert recorded[0][:2] == (urllib.error.URLError, ConnectionRefusedError)
    assert recorded[1][0] is ConnectionRefusedError
    events = http_events(path)
    assert [(e.error.type, e.meta.get("phase")) for e in events  # type: ignore[union-attr]
            ] == [("builtins.ConnectionRefusedError", "send")] * 2


def test_record_once_replay_ten_times_byte_identical(tmp_path: Path, server: Server) -> None:
    path = tmp_path / "ten.replay"

    def agent() -> bytes:
        parts: list[bytes] = []
        with urllib.request.urlopen(server.url + "/sse?n=3", timeout=5) as r:
            parts += list(r)
        for body in (b"a", b"b"):
            with urllib.request.urlopen(urllib.request.Request(
                    server.url + "/json", data=body, method="POST"), timeout=5) as r:
                parts.append(r.read())
        return b"".join(parts)

    record_then_replay(path, server, agent, plays=10)


def test_requests_and_urllib3_are_still_recorded_once(tmp_path: Path, server: Server) -> None:
    """urllib3 subclasses http.client.HTTPConnection: its requests go through vcrpy's
    stubs and must not be recorded a second time here."""
    path = tmp_path / "once.replay"

    def agent() -> list[Any]:
        return [requests.get(server.url + "/json?via=requests", timeout=5).json(),
                urllib3.request("POST", server.url + "/json?via=urllib3", body=b"x").json(),
                json.loads(urllib.request.urlopen(server.url + "/json?via=urllib",
                                                  timeout=5).read())]

    recorded = record_then_replay(path, server, agent)
    assert [r["n"] for r in recorded] == [1, 2, 3]
    assert [e.meta["client"] for e in http_events(path)] == ["urllib3", "urllib3",
                                                             "http.client"]


def test_secrets_in_headers_never_reach_the_cassette(tmp_path: Path, server: Server) -> None:
    path = tmp_path / "secret.replay"

    def agent() -> Any:
        req = urllib.request.Request(server.url + "/json", data=b'{"q": 1}', headers={
            "Authorization": f"Bearer {SECRET}", "X-Api-Key": SECRET,
            "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    recorded = record_then_replay(path, server, agent)
    assert recorded["body"] == '{"q": 1}'
    assert SECRET.encode() not in path.read_bytes()
    headers = http_events(path)[0].request["headers"]  # type: ignore[index]
    assert SECRET not in json.dumps(headers)
    assert set(headers) >= {"authorization", "x-api-key", "content-type"}


def test_an_unrecorded_request_diverges_and_nothing_connects(tmp_path: Path,
                                                             server: Server) -> None:
    path = tmp_path / "diverge.replay"
    url = server.url
    with replay.record(path):
        urllib.request.urlopen(url + "/json?a=1", timeout=5).read()
    server.stop()
    with pytest.raises(replay.DivergenceError):
        with replay.play(path, unused="ignore"):
            urllib.request.urlopen(url + "/json?a=2", timeout=5).read()


def test_outside_a_run_http_client_is_untouched(server: Server, tmp_path: Path) -> None:
    """With the patches installed (a run open), code outside every run (a thread started
    before it) gets the live response, unrecorded."""
    path = tmp_path / "other.replay"
    out: list[bytes] = []
    go = threading.Event()

    def foreign() -> None:
        go.wait(10)
        out.append(urllib.request.urlopen(server.url + "/json", timeout=5).read())

    t = threading.Thread(target=foreign)
    t.start()
    with replay.record(path):
        go.set()
        t.join(10)
    assert b'"n": 1' in out[0]
    assert http_events(path) == []


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, ssl.SSLContext]]:
    """The server behind TLS, with a self-signed certificate for 127.0.0.1 (openssl)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    srv = Server()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    srv.socket = server_ctx.wrap_socket(srv.socket, server_side=True)
    yield srv, ssl.create_default_context(cafile=str(cert))
    srv.stop()


def test_https_through_urlopen_replays_without_tls_or_socket(
        tmp_path: Path, tls_server: tuple[Server, ssl.SSLContext]) -> None:
    server, context = tls_server
    path = tmp_path / "https.replay"
    url = f"https://127.0.0.1:{server.port}"

    def agent() -> list[Any]:
        with urllib.request.urlopen(url + "/json?tls=1", timeout=5, context=context) as r:
            first = (r.status, json.loads(r.read()))
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=5,
                                           context=context)
        conn.request("GET", "/sse?n=2")
        r = conn.getresponse()
        lines = list(r)
        conn.close()
        return [first, lines]

    recorded = record_then_replay(path, server, agent)
    assert recorded[0] == (200, {"method": "GET", "path": "/json?tls=1", "n": 1, "body": ""})
    assert [e.request["url"] for e in http_events(path)] == [  # type: ignore[index]
        f"{url}/json?tls=1", f"{url}/sse?n=2"]
