"""The shortcut for ``http`` events (one anchor scan of the whole event, the URL's verdict
cached) gives what the full walk gives: for every secret shape, in every place an HTTP
event can hold one, and for the clean events it lets through unchanged."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from replay import Redactor
from replay._cassette.events import Chunk, Event, RecordedError
from replay._cassette.redact import DEFAULT
from tests._secret_samples import shape_samples

SAMPLES = shape_samples()
FULL = Redactor.with_patterns(["(?!x)x"])
"""A redactor with the default rules and an extra pattern that never matches: the
shortcut is off for it (extra patterns need the full walk), so it walks everything."""


def chat_event(**change: Any) -> Event:
    """An ``http`` event as the httpx recorder writes one (a chat call, its answer in
    two chunks); ``change`` replaces parts of it: ``url``, ``body``, ``headers``,
    ``response_headers``, ``chunks``, ``meta``, ``error``."""
    request = {"method": "POST", "url": change.get("url", "https://api.example.com/v1/chat"),
               "body": change.get("body", {"messages": [
                   {"content": "You are terse.", "role": "system"},
                   {"content": "what is the weather", "role": "user"}], "model": "m"}),
               "headers": change.get("headers", {"accept": "application/json",
                                                  "content-type": "application/json"})}
    response = {"status": 200, "reason": "OK", "http_version": "HTTP/1.1",
                "headers": change.get("response_headers", [
                    ["Content-Type", "application/json"], ["Content-Length", "42"],
                    ["Date", "Thu, 03 Dec 2026 17:00:00 GMT"]])}
    chunks = change.get("chunks", (b'{"choices": [{"message": {"content": "sunny', b'"}}]}'))
    return Event(seq=3, channel="http", request=request, response=response,
                 error=change.get("error"), start_ns=10, duration_ns=20, task="main",
                 chunks=tuple(Chunk(c, 5 + i) for i, c in enumerate(chunks)),
                 meta=change.get("meta", {"client": "httpx", "head_ns": 7}))


def places(secret: str) -> dict[str, dict[str, Any]]:
    """Where in an HTTP event a secret can be: the changes to :func:`chat_event`."""
    half = len(secret) // 2
    return {
        "url query": {"url": f"https://api.example.com/v1/chat?key={secret}"},
        "url path": {"url": f"https://api.example.com/v1/{secret}/chat"},
        "body value": {"body": {"messages": [{"content": f"use {secret} now",
                                              "role": "user"}], "model": "m"}},
        "body key": {"body": {"password": "hunter2-hunter2", "model": "m"}},
        "body bytes": {"body": f"token={secret}&x=1".encode()},
        "request header": {"headers": {"authorization": "Basic dXNlcjpwYXNz",
                                       "accept": "*/*"}},
        "response header": {"response_headers": [["Set-Cookie", "session=abcdef123456"],
                                                 ["Content-Type", "text/plain"]]},
        "response header value": {"response_headers": [["X-Echo", secret]]},
        "one chunk": {"chunks": (f'{{"k": "{secret}"}}'.encode(),)},
        "across chunks": {"chunks": (f"a {secret[:half]}".encode(),
                                     f"{secret[half:]} b".encode())},
        "meta": {"meta": {"client": "httpx", "note": f"saw {secret}"}},
        "error": {"error": RecordedError("httpx.ConnectError", f"failed with {secret}")},
    }


CASES = [(label, where) for label in sorted(SAMPLES) for where in places("x")]


@pytest.mark.parametrize(("label", "where"), CASES)
def test_the_shortcut_redacts_as_the_full_walk(label: str, where: str) -> None:
    event = chat_event(**places(SAMPLES[label])[where])
    before = copy.deepcopy(event)
    fast, full = DEFAULT(event), FULL(event)
    assert fast == full
    assert fast != event, f"{label} in {where} was left in"
    assert event == before  # the event handed in is never changed in place


@pytest.mark.parametrize("change", [
    {}, {"chunks": ()}, {"body": None}, {"body": b"\x00\x01binary"}, {"meta": {}},
    {"url": "https://api.example.com/v1/chat?page=2&sort=asc"},
    {"body": {"q": "is 1 + 1 = 2? yes; & no", "model": "m"}},
    {"response_headers": [["Content-Type", "application/json"]] * 2},
    {"body": {"max_tokens": 5, "next_page_token": "abc", "sort_key": "k"}},
])
def test_clean_events_come_back_as_they_are(change: dict[str, Any]) -> None:
    event = chat_event(**change)
    assert DEFAULT(event) is event
    assert FULL(event) == event


def test_the_shortcut_is_taken_for_a_clean_chat_call() -> None:
    assert DEFAULT._http_clean(chat_event())
    assert not FULL._http_clean(chat_event())  # extra patterns: the full walk
    assert not DEFAULT._http_clean(chat_event(body={"q": "x = 1?"}))  # may be a query
