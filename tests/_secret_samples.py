"""Secrets of every shape the redactor knows, built at run time, and an agent that plants them.

No secret-shaped literal is in this repository: every sample is assembled
from pieces (``"sk_" + "live_" + ...``) with a seeded generator, so the same
values come back in every process (the test, a recorded child, a pytester run).
"""

from __future__ import annotations

import json
import random
import string
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import zstandard

import replay

ALNUM = string.ascii_letters + string.digits


def _rand(name: str, n: int, alphabet: str = ALNUM) -> str:
    rng = random.Random(f"agent-replay/{name}")
    return "".join(rng.choice(alphabet) for _ in range(n))


def shape_samples() -> dict[str, str]:
    """One sample per shape label of ``secret_rules.SHAPES`` (what must not survive)."""
    r = _rand
    pem = "-----BEGIN " + "RSA PRIVATE KEY-----\n" + "\n".join(
        r(f"pem{i}", 64, ALNUM + "+/") for i in range(4)) + "\n-----END " + "RSA PRIVATE KEY-----"
    return {
        "anthropic-key": "sk-" + "ant-" + "api03-" + r("ant", 40),
        "openai-project-key": "sk-" + "proj-" + r("proj", 48),
        "openai-service-key": "sk-" + "svcacct-" + r("svc", 40),
        "openai-key": "sk-" + r("legacy", 48),
        "stripe-secret-key": "sk_" + "live_" + r("stripe", 24),
        "stripe-restricted-key": "rk_" + "live_" + r("stripe-rk", 24),
        "stripe-webhook-secret": "whsec_" + r("whsec", 32),
        "bearer-token": "Bearer " + r("bearer", 36),
        "aws-access-key": "AKIA" + r("akia", 16, string.ascii_uppercase + string.digits),
        "github-token": "ghp_" + r("ghp", 36),
        "github-pat": "github_" + "pat_" + r("pat", 40),
        "gitlab-token": "glpat-" + r("glpat", 20),
        "slack-token": "xox" + "b-" + r("slack1", 11, string.digits) + "-" + r("slack2", 24),
        "slack-webhook": "hooks.slack.com/services/T" + r("sw1", 8, string.ascii_uppercase)
                         + "/B" + r("sw2", 8, string.ascii_uppercase) + "/" + r("sw3", 24),
        "google-api-key": "AI" + "za" + r("aiza", 35),
        "google-oauth-token": "ya29." + r("ya29", 60),
        "google-client-secret": "GOCSPX-" + r("gocspx", 28),
        "jwt": "eyJ" + r("jwt1", 20) + ".eyJ" + r("jwt2", 40) + "." + r("jwt3", 43),
        "huggingface-token": "hf_" + r("hf", 34),
        "npm-token": "npm_" + r("npm", 36),
        "pypi-token": "pypi-" + "AgEIcHlwaS5vcmc" + r("pypi", 60),
        "sendgrid-key": "SG." + r("sg1", 22) + "." + r("sg2", 43),
        "groq-key": "gsk_" + r("groq", 52),
        "xai-key": "xai-" + r("xai", 80),
        "perplexity-key": "pplx-" + r("pplx", 48),
        "replicate-token": "r8_" + r("r8", 37),
        "langsmith-key": "lsv2_" + "pt_" + r("ls1", 32) + "_" + r("ls2", 10),
        "tavily-key": "tvly-" + r("tvly", 32),
        "private-key": pem,
        "url-password": "https://admin:" + r("urlpw", 18) + "@db.internal.example/orders",
    }


def needle(label: str, planted: str) -> str:
    """The part of a planted sample that must not survive."""
    if label == "bearer-token":
        return planted.split(" ", 1)[1]
    if label == "url-password":
        return planted.split(":")[2].split("@")[0]
    if label == "private-key":
        return planted.splitlines()[1]
    return planted


class Plants:
    """Everything planted in one run: shapes, named fields, a key used as a map key,
    the argv flags, an AWS secret beside its id."""

    def __init__(self) -> None:
        r = _rand
        self.shapes = shape_samples()
        self.aws_secret = r("aws-secret", 40, ALNUM + "/+")
        self.password = "pw-" + r("password", 20)
        self.client_secret = "cs-" + r("client-secret", 24)
        self.form_secret = "fs-" + r("form-secret", 24)
        self.header_token = "ht-" + r("header-token", 24)
        self.query_key = "qk-" + r("query-key", 24)
        self.dict_key = "sk-" + "proj-" + r("dict-key", 40)
        self.argv_key = "sk-" + "proj-" + r("argv-key", 40)
        self.argv_password = "ap-" + r("argv-password", 20)
        self.edit_secret = "sk_" + "live_" + r("edit-secret", 24)

    def argv(self) -> list[str]:
        """Flags a recorded program is started with."""
        return ["--api-key", self.argv_key, "--password", self.argv_password]

    def needles(self) -> dict[str, str]:
        """name -> the text that must appear in no cassette and no output."""
        out = {label: needle(label, v) for label, v in self.shapes.items()}
        out.update({"aws-secret-key": self.aws_secret, "field:password": self.password,
                    "field:client_secret": self.client_secret, "form:client_secret":
                    self.form_secret, "header:x-custom-auth-token": self.header_token,
                    "param:api_key": self.query_key, "dict-key": self.dict_key,
                    "argv:--api-key": self.argv_key, "flag:--password": self.argv_password})
        return out

    def labels(self) -> dict[str, str]:
        """name -> the kind ``replay scan`` must report it as."""
        out = {label: label for label in self.shapes}
        out.update({"aws-secret-key": "aws-secret-key", "field:password": "field:password",
                    "field:client_secret": "field:client_secret",
                    "form:client_secret": "param:client_secret",
                    "header:x-custom-auth-token": "field:x-custom-auth-token",
                    "param:api_key": "param:api_key", "dict-key": "openai-project-key",
                    "argv:--api-key": "openai-project-key", "flag:--password": "flag:--password"})
        return out

    def document(self) -> dict[str, Any]:
        """A JSON document holding every plant, with the fields that only look similar."""
        return {
            "shapes": dict(self.shapes),
            "text": " | ".join(self.shapes.values()),
            "aws": f"id {self.shapes['aws-access-key']} secret {self.aws_secret}",
            "password": self.password,
            "client_secret": self.client_secret,
            self.dict_key: 1,
            "max_tokens": 512,
            "usage": {"prompt_tokens": 31, "completion_tokens": 7, "total_tokens": 38},
            "tool_calls": [{"id": "call_" + _rand("call", 24), "type": "function"},
                           {"id": "toolu_" + _rand("toolu", 24), "type": "tool_use"}],
        }


def benign(doc: Any) -> dict[str, Any]:
    """The fields that only look like secrets, as a redacted document must keep them."""
    return {"max_tokens": doc["max_tokens"], "usage": doc["usage"],
            "ids": [c["id"] for c in doc["tool_calls"]]}


# -- the agent -------------------------------------------------------------------------------

@replay.tool
def plant_lookup(query: str, token: str) -> dict[str, Any]:
    """A tool whose arguments and result hold secrets."""
    return Plants().document()


@replay.tool
def plant_explode(query: str) -> None:
    """A tool that fails with every shape in its message."""
    raise ValueError("upstream refused " + " ".join(shape_samples().values()))


def agent(url: str) -> dict[str, Any]:
    """A run that plants every secret in tool arguments and results, an exception, a
    JSON request and response, a form body, a header and a query string."""
    plants = Plants()
    out: dict[str, Any] = {"tool": plant_lookup("all " + plants.shapes["stripe-secret-key"],
                                                token=plants.shapes["github-token"])}
    try:
        plant_explode(plants.shapes["jwt"])
    except ValueError:
        out["raised"] = True
    with httpx.Client() as client:
        query = urllib.parse.urlencode({"api_key": plants.query_key, "page": 2})
        r = client.post(f"{url}/echo?{query}", json=plants.document(),
                        headers={"Authorization": plants.shapes["bearer-token"],
                                 "X-Custom-Auth-Token": plants.header_token})
        out["json"] = r.json()
        form = {"grant_type": "client_credentials", "client_secret": plants.form_secret}
        out["form"] = client.post(f"{url}/token", data=form).text
    return out


def serve() -> tuple[Any, str]:
    """A loopback server that echoes request bodies; (server, url). Stop with shutdown()."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ctype = self.headers.get("Content-Type") or "application/octet-stream"
            self.send_response(200)
            self.send_header("Content-Type", ctype.split(";")[0])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


PROGRAM = f'''
import os, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
from tests._secret_samples import agent
agent(os.environ["PLANT_URL"])
'''
"""A program for ``replay record -- python prog.py --api-key ...`` (holds no secret)."""


# -- looking for survivors ------------------------------------------------------------------

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def raw_bytes(path: Path) -> bytes:
    """The file's bytes followed by every zstd frame in it decompressed: what was on
    disk before compression, whatever the format version lays the frames out as."""
    data = path.read_bytes()
    out, at = [data], data.find(ZSTD_MAGIC)
    while at >= 0:
        try:
            out.append(zstandard.ZstdDecompressor().decompressobj().decompress(data[at:]))
        except zstandard.ZstdError:
            pass  # four bytes that only look like a frame start
        at = data.find(ZSTD_MAGIC, at + 1)
    return b"".join(out)


def survivors(needles: dict[str, str], *texts: str | bytes) -> list[str]:
    """Names of the needles found in any of ``texts`` (as text, JSON-escaped or bytes)."""
    found = []
    for name, value in needles.items():
        forms = {value, json.dumps(value)[1:-1]}
        for text in texts:
            hay = text.decode("latin-1") if isinstance(text, bytes) else text
            if any(f in hay for f in forms):
                found.append(name)
                break
    return found


def file_survivors(needles: dict[str, str], path: Path) -> list[str]:
    """Needles left in a cassette: its raw bytes or its decompressed stream."""
    return survivors(needles, path.read_bytes(), raw_bytes(path))


if __name__ == "__main__":  # pragma: no cover - a manual look at the samples
    json.dump(Plants().needles(), sys.stdout, indent=1)
