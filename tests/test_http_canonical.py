"""The canonical request forms: the fast paths give what the plain definitions give."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from replay._capture.http.common import (
    canonical_body,
    canonical_url,
    display_headers,
    request_head,
    request_value,
)
from replay._capture.http.httpx import kit


def reference_body(data: bytes) -> Any:
    """The definition: ``json.loads`` with every object's keys sorted, NaN as text."""
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        return dict(sorted(pairs, key=lambda p: p[0]))
    try:
        return json.loads(data, object_pairs_hook=hook, parse_constant=str)
    except ValueError:
        return data


@pytest.mark.parametrize("data", [
    b'{"b": 1, "a": [{"z": 2, "y": null}], "c": "\\u00e9t\\u00e9"}',
    b'[1, {"b": 2, "a": 3}]',
    b'  {"a": 1}',  # leading whitespace
    b'{"a": 1}\n',  # trailing whitespace
    b'{"a": 1} x',  # trailing garbage: kept as bytes
    b'{"a": 1',  # truncated: kept as bytes
    b'{"a": NaN, "b": -Infinity}',
    b'{"a": 1, "a": 2, "b": 0}',  # a repeated key: the last value wins
    b'{"a": "\xff"}',  # not UTF-8: kept as bytes
    '{"b": "ü", "a": 1}'.encode("utf-16-le"),
    '\ufeff{"b": 1, "a": 2}'.encode("utf-8"),
    b"[",
])
def test_json_bodies_parse_as_the_definition_says(data: bytes) -> None:
    got = canonical_body(data, "application/json")
    assert got == reference_body(data)
    assert type(got) is type(reference_body(data))
    if isinstance(got, dict):
        assert list(got) == sorted(got)


def test_other_bodies() -> None:
    assert canonical_body(b"") is None and canonical_body(None) is None
    assert canonical_body(b"a=1&b=2", "application/x-www-form-urlencoded") == b"a=1&b=2"
    assert canonical_body('{"b": 1, "a": 2}') == {"a": 2, "b": 1}
    assert canonical_body({"b": [1, (2,)], "a": None}) == {"a": None, "b": [1, [2]]}


def test_urls_cached_and_canonical() -> None:
    for _ in range(2):  # the second time from the cache
        assert canonical_url("HTTPS://Example.COM:443/v1?b=2&a=1#frag") == \
            "https://example.com/v1?a=1&b=2"
        assert canonical_url("http://[::1]:8080") == "http://[::1]:8080/"


def test_request_headers_cached_but_never_shared() -> None:
    raw = [(b"Host", b"x"), (b"Content-Type", b"application/json"), (b"X-B", b"1"),
           (b"x-b", b"2"), (b"Accept", b"*/*")]
    first = display_headers(raw)
    assert first == {"accept": "*/*", "content-type": "application/json", "x-b": "1, 2"}
    assert list(first) == sorted(first)
    first["accept"] = "changed"  # a caller's change never reaches the next request
    assert display_headers(list(raw))["accept"] == "*/*"
    assert request_head(raw)[1] == "application/json"
    assert request_head([(b"content-type", b"a"), (b"Content-Type", b"b")])[1] == "a, b"
    assert request_head([])[1] is None
    assert display_headers([("x", ["not", "text"])]) == {"x": ["not", "text"]}  # type: ignore[list-item]


def test_httpx_request_value_is_request_value() -> None:
    k = kit(httpx)
    for request in (
        httpx.Request("post", "http://h:80/p?z=1&a=2", json={"b": 1, "a": [1.5, "x"]},
                      headers={"Authorization": "Bearer t", "X-Two": "a"}),
        httpx.Request("PUT", "https://h/up", content=b"\x00\x01 raw",
                      headers={"content-type": "application/octet-stream"}),
        httpx.Request("GET", "https://h/q", headers={"content-type": "text/json"}),
    ):
        request.read()
        want = request_value(request.method, str(request.url),
                             canonical_body(request.content,
                                            request.headers.get("content-type")),
                             request.headers.raw)
        got = k._request_value(request)
        assert got == want and list(got) == list(want)
        assert list(got["headers"]) == list(want["headers"])  # type: ignore[arg-type]
