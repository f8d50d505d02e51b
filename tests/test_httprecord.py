"""The short path of a recorded HTTP exchange (replay/_cassette/httprecord.py).

It must write what ``CassetteWriter.write`` writes for the same event (the same
file, byte for byte: blobs, de-duplication, index rows), redacted as ``write``
redacts it wherever redaction changes something.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from replay._cassette.codec import BLOB_MIN_SIZE
from replay._cassette.events import CallSite, Chunk, Event
from replay._cassette.httprecord import write_http
from replay._cassette.layout import Header
from replay._cassette.reader import read_cassette
from replay._cassette.redact import DEFAULT, Redactor
from replay._cassette.writer import CassetteWriter
from tests._secret_samples import shape_samples
from tests.test_redact_http import chat_event, places

SITE = CallSite("/src/agent.py", 12, "run")
ANSWER = json.dumps({"choices": [{"message": {"content": "lorem ipsum " * 160}}]}).encode()
HISTORY = [{"content": f"message {i} " + "words " * 20, "role": "user"} for i in range(6)]


def exchange(i: int, **change: Any) -> dict[str, Any]:
    """The parts of one recorded exchange (as the httpx recorder hands them over)."""
    body = change.get("body", {"messages": [{"content": "You are terse.", "role": "system"},
                                            {"content": f"turn {i}", "role": "user"}],
                               "model": "m", "temperature": 0})
    request = {"method": "POST", "url": change.get("url", "https://api.example.com/v1/chat"),
               "body": body, "headers": change.get("headers", {
                   "accept": "*/*", "content-type": "application/json",
                   "user-agent": "python-httpx/0.29.0"})}
    response = {"status": change.get("status", 200), "reason": "OK",
                "http_version": "HTTP/1.1", "headers": change.get("response_headers", [
                    ["Server", "BaseHTTP/0.6 Python/3.11.7"],
                    ["Date", f"Thu, 03 Dec 2026 20:40:0{i % 10} GMT"],
                    ["Content-Type", "application/json"], ["Content-Length", "1900"]])}
    datas = change.get("datas", [ANSWER.replace(b"lorem", b"turn%d" % i)])
    return {"seq": i, "start_ns": 1000 * i, "duration_ns": 500 + i, "task": change.get(
                "task", "main"), "site": change.get("site", SITE), "parent": change.get("parent"),
            "request": request, "response": response, "datas": datas,
            "times": [7 + k for k in range(len(datas))],
            "meta": change.get("meta", {"client": "httpx", "head_ns": 300 + i})}


def event_of(x: dict[str, Any]) -> Event:
    return Event(x["seq"], "http", x["request"], x["response"], None, x["start_ns"],
                 x["duration_ns"], x["task"], x["site"],
                 tuple(Chunk(d, t) for d, t in zip(x["datas"], x["times"], strict=True)),
                 x["parent"], dict(x["meta"]))


CASES: list[dict[str, Any]] = [
    {},  # the bench's exchange: a ~2 KB answer, a blob
    {"datas": [b'{"ok": true}']},  # all small: one record, no blob
    {"datas": [b"data: x\n\n"] * 40},  # small chunks, a record past the blob size: walked
    {"datas": [b"a" * 300, b"b" * 10, b"a" * 300]},  # a repeated large chunk: one blob
    {"datas": []},  # no body (a 204)
    {"body": {"messages": HISTORY, "model": "m"}},  # a conversation: its messages as blobs
    {"body": {"messages": HISTORY[:3], "model": "m"}},  # ... the same messages again
    {"body": b"\x00\x01raw bytes " * 40},  # a non-JSON body, as bytes
    {"body": None, "status": 404},  # an error status: its flag in the index
    {"parent": 2, "task": "main/x.py:3#1", "site": None},
    {"meta": {"client": "httpx", "head_ns": 5, "decoded": "gzip", "stream": "closed-early"}},
    {"meta": {}},
    {"response_headers": [["X-Long", "v" * 400]]},  # a response large enough to be walked
    {"meta": {"client": "httpx", "note": "n" * 300}},  # meta large enough to be walked
    {"datas": [b"x" * (BLOB_MIN_SIZE - 1)]},
    {"datas": [b"x" * BLOB_MIN_SIZE]},
]


def _pair(tmp_path: Path, transform: Redactor | None = DEFAULT) -> tuple[CassetteWriter,
                                                                           CassetteWriter]:
    header = Header.new()
    return (CassetteWriter(tmp_path / "short.replay", header, transform=transform),
            CassetteWriter(tmp_path / "long.replay", header, transform=transform))


@pytest.mark.parametrize("transform", [DEFAULT, None])
def test_write_http_writes_the_bytes_write_would(tmp_path: Path,
                                                 transform: Redactor | None) -> None:
    short, long = _pair(tmp_path, transform)
    for rounds in range(2):  # the second round finds every blob of the first: refs only
        for i, change in enumerate(CASES):
            x = exchange(i + 100 * rounds * (i % 2), **change)
            x["seq"] = i + len(CASES) * rounds
            assert write_http(short, **x), change
            long.write(event_of(x))
    short.close()
    long.close()
    data = (tmp_path / "short.replay").read_bytes()
    assert data == (tmp_path / "long.replay").read_bytes()
    events = read_cassette(tmp_path / "short.replay").events
    assert len(events) == 2 * len(CASES)
    assert [e.request for e in events[:len(CASES)]] == \
        [exchange(i, **c)["request"] for i, c in enumerate(CASES)]
    assert [b"".join(c.data for c in e.chunks) for e in events[:len(CASES)]] == \
        [b"".join(exchange(i, **c)["datas"]) for i, c in enumerate(CASES)]


def test_the_index_rows_and_blob_table_match_past_a_batch(tmp_path: Path) -> None:
    from replay._cassette import index as ix
    short, long = _pair(tmp_path)
    for i in range(ix.BATCH + 3):
        x = exchange(i % 50)  # answers repeat: refs to earlier blobs
        x["seq"] = i
        assert write_http(short, **x)
        long.write(event_of(x))
    short.close()
    long.close()
    assert (tmp_path / "short.replay").read_bytes() == (tmp_path / "long.replay").read_bytes()


def _secret_changes() -> list[tuple[str, str, dict[str, Any]]]:
    """Every secret shape in every place of an exchange, as ``exchange`` changes."""
    out = []
    for label, secret in sorted(shape_samples().items()):
        for where, change in places(secret).items():
            if where == "error":
                continue  # the short path is never offered an error
            ev = chat_event(**change)
            x: dict[str, Any] = {"request": ev.request, "response": ev.response,
                                 "datas": [c.data for c in ev.chunks],
                                 "times": [c.at_ns for c in ev.chunks], "meta": dict(ev.meta)}
            out.append((label, where, x))
    return out


@pytest.mark.parametrize(("label", "where", "parts"), _secret_changes(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_a_secret_anywhere_sends_the_event_the_long_way(tmp_path: Path, label: str, where: str,
                                                        parts: dict[str, Any]) -> None:
    short, long = _pair(tmp_path)
    x = {"seq": 0, "start_ns": 1, "duration_ns": 2, "task": "main", "site": SITE,
         "parent": None, **parts}
    if not write_http(short, **x):  # redacted here, or declined (a URL): the long way
        assert where.startswith("url"), f"{label} in {where}: declined"
        short.write(event_of(x))  # what the recorder does next
    long.write(event_of(x))
    short.close()
    long.close()
    assert (tmp_path / "short.replay").read_bytes() == (tmp_path / "long.replay").read_bytes()
    stored = read_cassette(tmp_path / "short.replay").events[0]
    assert stored == DEFAULT(event_of(x)) != event_of(x)


@pytest.mark.parametrize("name", ["method", "url", "body", "headers"])
def test_the_request_keys_hold_no_secret(name: str) -> None:
    """write_http scans the request's values, not its four keys: they must be clear."""
    assert DEFAULT._key(name) == (False, False)


def test_declines_what_it_does_not_know(tmp_path: Path) -> None:
    short, _ = _pair(tmp_path)
    x = exchange(0)
    assert not write_http(short, **{**x, "request": {**x["request"], "extra": 1}})
    assert not write_http(short, **{**x, "datas": [bytearray(b"abc")], "times": [1]})
    assert not write_http(short, **{**x, "meta": {"odd": {1, 2}}})
    short.close()
    assert read_cassette(tmp_path / "short.replay").events == []


def test_a_redactor_with_the_users_patterns_redacts_as_write(tmp_path: Path) -> None:
    mine = Redactor.with_patterns([r"order-\d+"])
    short, long = _pair(tmp_path, mine)
    x = exchange(0, body={"note": "see order-12345", "model": "m"})
    assert write_http(short, **x)  # no yes/no scan with the user's patterns: walked
    long.write(event_of(x))
    short.close()
    long.close()
    assert (tmp_path / "short.replay").read_bytes() == (tmp_path / "long.replay").read_bytes()
    assert read_cassette(tmp_path / "short.replay").events[0].request["body"]["note"] == \
        "see [REDACTED]"


def test_a_closed_writer_refuses(tmp_path: Path) -> None:
    short, _ = _pair(tmp_path)
    short.close()
    with pytest.raises(ValueError, match="closed"):
        write_http(short, **exchange(0))


SDK_HEADERS = {"accept": "application/json", "authorization": "Bearer sk-" + "k" * 32,
               "content-type": "application/json", "user-agent": "AsyncOpenAI/Python 3.60.0",
               "x-stainless-retry-count": "0"}
USAGE = b'{"choices": [], "usage": {"prompt_tokens": 12, "total_tokens": 52}}'


def test_an_sdks_headers_are_redacted_once_and_written_as_write_writes_them(
        tmp_path: Path) -> None:
    """An SDK sends the same headers (its key among them) with every call: the map is
    redacted once per redactor, not walked in every event, and every event is still
    written as ``write`` writes it (a body with ``_tokens``, a changed header, a body
    with a key in it, a header map of other types)."""
    red = Redactor()
    seen: list[object] = []
    walk = red.value

    def value(v: Any, key: str | None = None) -> Any:
        seen.append(v)
        return walk(v, key)
    object.__setattr__(red, "value", value)
    short, long = _pair(tmp_path, red)
    changes: list[dict[str, Any]] = [
        {"headers": SDK_HEADERS, "datas": [USAGE]},
        {"headers": SDK_HEADERS, "datas": [USAGE]},
        {"headers": {**SDK_HEADERS, "x-stainless-retry-count": "1"}, "datas": [USAGE]},
        {"headers": SDK_HEADERS, "datas": [b'{"leaked": "sk-' + b"z" * 30 + b'"}']},
        {"headers": {**SDK_HEADERS, "x-n": 1}},  # not str to str: the long way
        {"headers": SDK_HEADERS, "body": {"api_key": "abc", "model": "m"}},
        {"headers": SDK_HEADERS},
    ]
    xs = [exchange(i, **change) for i, change in enumerate(changes)]
    for x in xs:
        assert write_http(short, **x)
    # walked once, and again only where the body's key sends the whole event the long way
    assert sum(v == SDK_HEADERS for v in seen) == 2
    for x in xs:
        long.write(event_of(x))
    short.close()
    long.close()
    assert (tmp_path / "short.replay").read_bytes() == (tmp_path / "long.replay").read_bytes()
    events = read_cassette(tmp_path / "short.replay").events
    assert {e.request["headers"]["authorization"] for e in events} == {"[REDACTED]"}
    assert b"sk-zzz" not in (tmp_path / "short.replay").read_bytes()


@pytest.mark.parametrize("pairs", [
    [["Authorization", "Basic abc"]],
    [["Content-Type", "text/plain"], ["Set-Cookie", "a=1"]],  # two pairs: a list of two
    [["Date", "x"], ["Content-Type", "text/plain"], ["X-Custom-Auth-Token", "abc"]],
    [["Date", "x"], ["Server", "s"], ["Proxy-Authorization", "abc"], ["Via", "1.1"]],
    [["Date", "x"], ["Server", "s"], ["X-Amz-Security-Token", "abc"]],
])
def test_a_sensitive_response_header_anywhere_is_redacted(tmp_path: Path,
                                                          pairs: list[list[str]]) -> None:
    short, long = _pair(tmp_path)
    clean = exchange(0)
    assert write_http(short, **clean)  # the clean names are remembered as clean ...
    long.write(event_of(clean))
    x = exchange(1, response_headers=pairs)
    assert write_http(short, **x)  # ... and a sensitive one is never taken for one
    long.write(event_of(x))
    short.close()
    long.close()
    assert (tmp_path / "short.replay").read_bytes() == (tmp_path / "long.replay").read_bytes()
    headers = read_cassette(tmp_path / "short.replay").events[1].response["headers"]
    assert [v for _, v in headers][-1 if len(pairs) != 4 else 2] == "[REDACTED]"


def test_both_paths_share_one_blob_table(tmp_path: Path) -> None:
    """Events written the short and the long way in one file refer to each other's blobs
    (the same de-duplication key), as if all had gone the long way."""
    mixed, long = _pair(tmp_path)
    for i in range(12):
        x = exchange(i % 3, body={"messages": HISTORY[: 2 + i % 4], "model": "m"})
        x["seq"] = i
        if i % 2:
            mixed.write(event_of(x))
        else:
            assert write_http(mixed, **x)
        long.write(event_of(x))
    mixed.close()
    long.close()
    assert (tmp_path / "short.replay").read_bytes() == (tmp_path / "long.replay").read_bytes()


@pytest.mark.parametrize("raw", [
    [(b"Content-Type", b"application/json"), (b"Date", b"x")],
    [(b"Content-Encoding", b"gzip"), (b"content-encoding", b"br"), (b"X", b"\xe9")],
    [(b"Set-Cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"CONTENT-ENCODING", b"deflate")],
    [],
])
def test_response_pairs_read_what_the_public_headers_hold(raw: list[tuple[bytes, bytes]]) -> None:
    import httpx

    from replay._capture.http.common import header_get, header_pairs
    from replay._capture.http.recording import response_pairs

    headers = httpx.Headers(raw)
    want = header_pairs(headers.raw)
    assert response_pairs(headers) == (want, header_get(want, "content-encoding"))

    class Plain:  # no triples: the public way
        def __init__(self) -> None:
            self.raw = raw
    assert response_pairs(Plain()) == (want, header_get(want, "content-encoding"))
