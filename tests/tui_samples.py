"""Deterministic sample runs for the TUI tests and benchmarks.

Every value is fixed (no clock, no random, fake call-site paths), so screen
snapshots of these runs are the same on every machine. ``agent_run()`` reads
like a small travel agent: clock/random/uuid inputs, OpenAI chat, OpenAI
Responses and Anthropic model calls (one streamed as SSE), tools with nested
events, a tool that raises, and an HTTP 429.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import replay
from replay._cassette import CassetteWriter

HEADER = replay.Header(created="2026-01-02T03:04:05.000000Z", argv=("agent.py", "--city", "Oslo"),
                       python="CPython 3.11.7", platform="Linux-x86_64",
                       meta=replay.Redactor().meta({}))  # holds no secret: shown as is
SITE = "/srv/agent/travel_agent.py"
MS = 1_000_000

SYSTEM = "You are a travel agent. Use the tools to find and book flights."


def _site(line: int, fn: str) -> replay.CallSite:
    return replay.CallSite(SITE, line, fn)


def _http(url: str, body: Any, status: int, resp: Any, *,
          headers: dict[str, str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    req = {"method": "POST", "url": url,
           "headers": {"content-type": "application/json", "authorization": "[REDACTED]"},
           "body": body}
    res = {"status": status, "headers": headers or {"content-type": "application/json",
                                                       "x-request-id": "req_0001"},
           "body": resp}
    return req, res


def _sse(*objs: Any, event_names: bool = False) -> list[bytes]:
    out = []
    for o in objs:
        head = f"event: {o.get('type')}\n" if event_names and isinstance(o, dict) else ""
        data = o if isinstance(o, str) else json.dumps(o)
        out.append(f"{head}data: {data}\n\n".encode())
    return out


def agent_run() -> list[replay.Event]:
    """About 24 events of one agent run, in seq order."""
    evs: list[replay.Event] = []
    t = 0

    def add(channel: str, request: Any, response: Any = None, *, dur_ms: float = 0.05,
            line: int = 10, fn: str = "main", gap_ms: float = 1.0, **kw: Any) -> replay.Event:
        nonlocal t
        t += int(gap_ms * MS)
        ev = replay.Event(seq=len(evs), channel=channel, request=request, response=response,
                          start_ns=t, duration_ns=int(dur_ms * MS), site=_site(line, fn), **kw)
        evs.append(ev)
        return ev

    add("uuid", {"fn": "uuid4"}, "5f0c2a9e-8a4b-4c1e-9d1e-2b7f3c4d5e6f", line=21)
    add("clock", {"fn": "time.time"}, 1767323045.125, line=22)
    add("random", {"fn": "random"}, 0.4217, line=30, fn="plan")
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Find me the cheapest flight from Oslo to Rome on Friday."},
    ]
    call = {"id": "call_1", "type": "function",
            "function": {"name": "search_flights",
                         "arguments": '{"origin": "OSL", "dest": "FCO", "day": "2026-01-09"}'}}
    req, res = _http("https://api.openai.com/v1/chat/completions",
                     {"model": "gpt-4o-mini", "messages": list(messages),
                      "tools": [{"type": "function", "function": {"name": "search_flights"}},
                                {"type": "function", "function": {"name": "book"}}]},
                     200, {"id": "chatcmpl-1", "object": "chat.completion",
                           "model": "gpt-4o-mini-2024-07-18",
                           "choices": [{"index": 0, "finish_reason": "tool_calls",
                                        "message": {"role": "assistant", "content": None,
                                                    "tool_calls": [call]}}],
                           "usage": {"prompt_tokens": 812, "completion_tokens": 41,
                                     "total_tokens": 853}})
    add("http", req, res, dur_ms=640.0, line=44, fn="ask_model", gap_ms=2.0)
    tool = add("tool:search_flights", {"args": {"origin": "OSL", "dest": "FCO",
                                                "day": "2026-01-09"}},
               [{"id": "a1b2", "price": 129}, {"id": "c3d4", "price": 99}],
               dur_ms=210.0, line=61, fn="run_tool", meta={"safe": True})
    add("uuid", {"fn": "uuid4"}, "0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a", line=12,
        fn="search_flights", parent=tool.seq, gap_ms=0.5)
    add("random", {"fn": "randint", "a": 80, "b": 400}, 129, line=13, fn="search_flights",
        parent=tool.seq, gap_ms=0.2)
    messages += [{"role": "assistant", "content": None, "tool_calls": [call]},
                 {"role": "tool", "tool_call_id": "call_1",
                  "content": '[{"id": "a1b2", "price": 129}, {"id": "c3d4", "price": 99}]'}]
    book = {"id": "call_2", "type": "function",
            "function": {"name": "book", "arguments": '{"flight_id": "c3d4", "price": 99}'}}
    req, res = _http("https://api.openai.com/v1/chat/completions",
                     {"model": "gpt-4o-mini", "messages": list(messages)},
                     200, {"id": "chatcmpl-2", "model": "gpt-4o-mini-2024-07-18",
                           "choices": [{"index": 0, "finish_reason": "tool_calls",
                                        "message": {"role": "assistant",
                                                    "content": "Booking the 99 EUR flight.",
                                                    "tool_calls": [book]}}],
                           "usage": {"prompt_tokens": 901, "completion_tokens": 35,
                                     "total_tokens": 936}})
    add("http", req, res, dur_ms=702.5, line=44, fn="ask_model", gap_ms=215.0)
    tb = ('Traceback (most recent call last):\n'
          f'  File "{SITE}", line 61, in run_tool\n    return fn(**args)\n'
          f'  File "{SITE}", line 75, in book\n    raise RuntimeError(msg)\n'
          'RuntimeError: payment declined for flight c3d4 at 99 EUR\n')
    add("tool:book", {"args": {"flight_id": "c3d4", "price": 99}}, None, dur_ms=55.0, line=61,
        fn="run_tool", meta={"safe": False},
        error=replay.RecordedError("builtins.RuntimeError",
                                   "payment declined for flight c3d4 at 99 EUR", tb))
    add("sleep", {"fn": "time.sleep", "seconds": 1.5}, None, line=80, fn="backoff",
        dur_ms=1500.0)
    add("http", *_http("https://api.anthropic.com/v1/messages",
                       {"model": "claude-sonnet-4-5", "max_tokens": 512, "messages": []},
                       429, {"type": "error", "error": {"type": "rate_limit_error",
                                                        "message": "Rate limited"}}),
        dur_ms=80.0, line=90, fn="summarize", gap_ms=1502.0)
    anth_msgs = [{"role": "user", "content": [{"type": "text", "text": "Summarise the trip."}]},
                 {"role": "assistant", "content": [
                     {"type": "tool_use", "id": "toolu_1", "name": "book",
                      "input": {"flight_id": "c3d4", "price": 99}}]},
                 {"role": "user", "content": [
                     {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
                      "content": "payment declined for flight c3d4 at 99 EUR"}]}]
    pieces = ["The booking ", "failed: the ", "card was ", "declined. ", "Try another ",
              "card or ", "a later ", "flight."]
    sse = _sse({"type": "message_start", "message": {
                   "model": "claude-sonnet-4-5-20250929",
                   "usage": {"input_tokens": 1204, "output_tokens": 1}}},
               {"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}},
               event_names=True)
    sse += _sse(*({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "text_delta", "text": p}} for p in pieces),
                event_names=True)
    sse += _sse({"type": "content_block_stop", "index": 0},
                {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                 "usage": {"output_tokens": 19}},
                {"type": "message_stop"}, event_names=True)
    gaps = [310, 2, 40, 35, 60, 38, 41, 120, 36, 44, 3, 9, 1]
    at, chunks = 0, []
    for data, gap in zip(sse, gaps, strict=True):
        at += gap * MS
        chunks.append(replay.Chunk(data, at))
    req, _ = _http("https://api.anthropic.com/v1/messages",
                   {"model": "claude-sonnet-4-5", "max_tokens": 512, "stream": True,
                    "system": "You summarise trips in one sentence.", "messages": anth_msgs},
                   0, None)
    add("http", req, {"status": 200, "headers": {"content-type": "text/event-stream"}},
        dur_ms=at / MS + 2, line=90, fn="summarize", gap_ms=300.0, chunks=tuple(chunks),
        meta={"stream": True})
    req, res = _http("https://api.openai.com/v1/responses",
                     {"model": "gpt-4.1-mini", "instructions": "Answer in French.",
                      "input": [{"role": "user", "content": "Say the trip failed."},
                                {"type": "function_call", "name": "notify",
                                 "arguments": '{"channel": "sms"}', "call_id": "fc_1"},
                                {"type": "function_call_output", "call_id": "fc_1",
                                 "output": "sent"}]},
                     200, {"id": "resp_1", "model": "gpt-4.1-mini-2025-04-14",
                           "output": [{"type": "message", "role": "assistant", "content": [
                               {"type": "output_text", "text": "Le voyage a échoué."}]}],
                           "usage": {"input_tokens": 57, "output_tokens": 9,
                                     "total_tokens": 66}})
    add("http", req, res, dur_ms=420.0, line=101, fn="translate", gap_ms=800.0)
    for i in range(6):
        add("clock", {"fn": "time.time"}, 1767323049.5 + i, line=120, fn="report", gap_ms=0.3)
    add("random", {"fn": "choice", "n": 5}, 3, line=121, fn="report")
    add("uuid", {"fn": "uuid4"}, "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", line=122, fn="report")
    return evs


def agent_cassette(path: str = "/srv/runs/trip.replay") -> replay.Cassette:
    """The sample run as an in-memory cassette."""
    return replay.Cassette(path, HEADER, tuple(agent_run()))


def big_run(n: int) -> list[replay.Event]:
    """``n`` events made by repeating the sample run with growing seq and time."""
    base = agent_run()
    span = base[-1].start_ns + 1 * MS
    out = []
    for i in range(n):
        ev = base[i % len(base)]
        lap = i // len(base)
        parent = None if ev.parent is None else ev.parent + lap * len(base)
        out.append(replay.Event(
            seq=i, channel=ev.channel, request=ev.request, response=ev.response, error=ev.error,
            start_ns=ev.start_ns + lap * span, duration_ns=ev.duration_ns, site=ev.site,
            chunks=ev.chunks, parent=parent, meta=ev.meta))
    return out


def write(path: str | os.PathLike[str], events: list[replay.Event]) -> str:
    """Write ``events`` to a cassette file; returns its path."""
    with CassetteWriter(path, HEADER) as w:
        for ev in events:
            w.write(ev)
    return os.fspath(path)


def damaged(path: str | os.PathLike[str], events: list[replay.Event], cut: int = 200) -> str:
    """A cassette whose last ``cut`` bytes are gone: what a killed recording leaves (the
    journal, never packed), torn."""
    w = CassetteWriter(path, HEADER)
    for ev in events:
        w.write(ev)
    w.abort()
    os.replace(w.partial_path, path)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - cut)
    return os.fspath(path)


def diverged_run() -> list[replay.Event]:
    """The sample run as a replay that went another way at #4 (another flight price)."""
    out = []
    for ev in agent_run():
        if ev.seq == 4:
            ev = dataclasses.replace(ev, response=[{"id": "a1b2", "price": 129},
                                                   {"id": "c3d4", "price": 149}])
        elif ev.seq == 7:
            assert isinstance(ev.request, dict) and isinstance(ev.response, dict)
            body = dict(ev.request["body"])  # type: ignore[arg-type]
            msgs = list(body["messages"])  # type: ignore[arg-type]
            msgs[-1] = {**msgs[-1], "content": '[{"id": "a1b2", "price": 129}, '  # type: ignore[dict-item]
                        '{"id": "c3d4", "price": 149}]'}
            answer = json.loads(json.dumps(ev.response["body"]))
            answer["choices"][0]["message"]["content"] = "Booking the 129 EUR flight."
            ev = dataclasses.replace(ev, request={**ev.request, "body": {**body, "messages": msgs}},
                                     response={**ev.response, "body": answer})
        elif ev.seq == 17:
            continue
        out.append(ev)
    return [dataclasses.replace(ev, seq=k) for k, ev in enumerate(out)]


def context_run() -> list[replay.Event]:
    """Two calls of one support conversation: the second's system prompt was edited
    ("order total" -> "order amount"), the user's long first message truncated, and
    the tool call and its result added; then a call of a new conversation."""
    system = ("You are Ada, the support agent of Parcelly.\nCheck the order total "
              "before any refund.\nNever refund more than the order total.")
    ask = "Hi, I was charged twice for order A-1042. " + "It was a parcel of shoes. " * 6
    call = {"id": "call_7", "type": "function",
            "function": {"name": "lookup_order", "arguments": '{"order_id": "A-1042"}'}}
    first = [{"role": "system", "content": system}, {"role": "user", "content": ask}]
    second = [{"role": "system", "content": system.replace("order total", "order amount")},
              {"role": "user", "content": ask[:60]},
              {"role": "assistant", "content": None, "tool_calls": [call]},
              {"role": "tool", "tool_call_id": "call_7",
               "content": '{"order_id": "A-1042", "total": 49.9}'}]
    evs = []
    for n, (msgs, answer, tokens) in enumerate(
            ((first, None, 140), (second, "Refunding 49.90 USD.", 171),
             ([{"role": "user", "content": "Summarise the day."}], "Quiet.", 12))):
        out = {"role": "assistant", "content": answer}
        if answer is None:
            out["tool_calls"] = [call]
        req, res = _http("https://api.openai.com/v1/chat/completions",
                         {"model": "gpt-4o-mini", "messages": msgs}, 200,
                         {"id": f"chatcmpl-{n}", "model": "gpt-4o-mini-2024-07-18",
                          "choices": [{"index": 0, "message": out}],
                          "usage": {"prompt_tokens": tokens, "completion_tokens": 9,
                                    "total_tokens": tokens + 9}})
        evs.append(replay.Event(seq=2 * n, channel="http", request=req, response=res,
                                start_ns=(1 + 300 * n) * MS, duration_ns=250 * MS,
                                site=_site(40, "ask")))
        if n == 0:
            evs.append(replay.Event(seq=1, channel="tool:lookup_order",
                                    request={"args": {"order_id": "A-1042"}},
                                    response={"order_id": "A-1042", "total": 49.9},
                                    start_ns=260 * MS, duration_ns=30 * MS,
                                    site=_site(55, "run_tool")))
    evs.insert(3, replay.Event(seq=3, channel="clock", request={"fn": "time.time"},
                               response=1767323045.5, start_ns=560 * MS, duration_ns=MS // 20,
                               site=_site(60, "report")))
    evs[4] = dataclasses.replace(evs[4], seq=4)
    return evs


async def until_settled(pilot: Any, timeout: float = 60.0) -> None:
    """Let a ``ReplayApp`` under a Textual pilot run until its loading is over
    (``app.settled``) and its workers are done, then one more frame: a condition,
    not a sleep (loading starts only after the first paint)."""
    deadline = time.monotonic() + timeout
    while not getattr(pilot.app, "settled", True):
        assert time.monotonic() < deadline, "the app did not finish loading"
        await pilot.pause(0.01)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def settle(pilot: Any) -> None:
    """Wait for loading (it starts after the first paint) and every worker, then a frame."""
    await until_settled(pilot)


async def press(pilot: Any, *keys: str) -> None:
    """Press ``keys`` one by one, letting the app settle after each."""
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


@contextlib.asynccontextmanager
async def running(app: Any, size: tuple[int, int] = (120, 36)) -> AsyncIterator[Any]:
    """``app`` under a Textual pilot at ``size``, settled before the test acts."""
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        yield pilot


def seq(app: Any) -> int | None:
    """The seq of the event under the main timeline's cursor."""
    ev = app.main.timeline.event
    return None if ev is None else ev.seq
