"""The local LLM emulator, driven by the real ``openai`` and ``anthropic`` SDKs."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import selectors
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from anthropic.types import Message, TextBlock, ToolUseBlock
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.chat_completion_message_function_tool_call import (
    ChatCompletionMessageFunctionToolCall,
)
from openai.types.responses import Response, ResponseFunctionToolCall, ResponseOutputMessage

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the fixtures package is not installed; import it from the tree
    sys.path.insert(0, str(ROOT))

from fixtures.emulator import (  # noqa: E402
    Emulator,
    Failure,
    Script,
    ScriptError,
    ToolCall,
    Turn,
    Usage,
    When,
)

USER_HI: Any = [{"role": "user", "content": "hi"}]
WEATHER = ToolCall("get_weather", {"city": "Paris"})


@pytest.fixture
def serve(emulator: Callable[..., Emulator]) -> Callable[..., Emulator]:
    """``serve(*turns, **script_options)``: the shared ``emulator`` fixture (conftest)."""
    return emulator


def oai(emu: Emulator, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-test", max_retries=retries)


def ant(emu: Emulator, retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=emu.url, api_key="sk-ant-test", max_retries=retries)


# ----------------------------------------------------------------- OpenAI chat


def test_chat_plain(serve: Any) -> None:
    emu = serve(Turn(text="Hello!", model="gpt-4o-2024-08-06", usage=Usage(12, 3, cached_tokens=2)),
                created=1_712_345_678)  # fmt: skip
    with oai(emu) as client:
        out = client.chat.completions.create(model="gpt-4o", messages=USER_HI)
    assert isinstance(out, ChatCompletion)
    assert out.object == "chat.completion"
    assert out.id.startswith("chatcmpl-") and len(out.id) == len("chatcmpl-") + 29
    assert out.created == 1_712_345_678
    assert out.model == "gpt-4o-2024-08-06"
    assert out.system_fingerprint == "fp_emulator"
    choice = out.choices[0]
    assert (choice.index, choice.finish_reason) == (0, "stop")
    assert choice.message.role == "assistant" and choice.message.content == "Hello!"
    assert choice.message.tool_calls is None
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens) == (
        12, 3, 15,
    )  # fmt: skip
    assert out.usage.prompt_tokens_details is not None
    assert out.usage.prompt_tokens_details.cached_tokens == 2
    [req] = emu.requests
    assert out._request_id == req.request_id and req.request_id.startswith("req_")
    assert (req.endpoint, req.outcome, req.turn, req.stream) == ("chat", "answered", 0, False)
    assert req.json()["messages"] == USER_HI
    assert req.headers["authorization"] == "Bearer sk-test"


def test_chat_tool_calls(serve: Any) -> None:
    emu = serve(Turn(tool_calls=[WEATHER, ToolCall("get_time", '{"tz":"CET"}', id="call_fixed")]))
    with oai(emu) as client:
        out = client.chat.completions.create(model="gpt-4o", messages=USER_HI)
    msg = out.choices[0].message
    assert out.choices[0].finish_reason == "tool_calls"
    assert msg.content is None
    assert msg.tool_calls is not None and len(msg.tool_calls) == 2
    first, second = msg.tool_calls
    assert isinstance(first, ChatCompletionMessageFunctionToolCall)
    assert isinstance(second, ChatCompletionMessageFunctionToolCall)
    assert first.id.startswith("call_") and first.type == "function"
    assert first.function.name == "get_weather"
    assert json.loads(first.function.arguments) == {"city": "Paris"}
    assert second.id == "call_fixed" and second.function.arguments == '{"tz":"CET"}'


def test_chat_streamed_text_tool_calls_and_usage(serve: Any) -> None:
    emu = serve(Turn(text="Let me look.", tool_calls=[WEATHER], usage=Usage(20, 7)),
                chunk_size=4)  # fmt: skip
    with oai(emu) as client:
        stream = client.chat.completions.create(
            model="gpt-4o", messages=USER_HI, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    first, *middle, finish, usage = chunks
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content == ""
    texts = [c.choices[0].delta.content for c in middle if c.choices[0].delta.content]
    assert texts == ["Let ", "me l", "ook."]
    calls = [tc for c in middle for tc in c.choices[0].delta.tool_calls or []]
    head, *frags = calls
    assert head.index == 0 and head.id and head.id.startswith("call_") and head.type == "function"
    assert head.function is not None and head.function.name == "get_weather"
    args = "".join(f.function.arguments or "" for f in frags if f.function is not None)
    assert json.loads(args) == {"city": "Paris"} and len(frags) > 1
    assert all(f.id is None and f.index == 0 for f in frags)
    assert finish.choices[0].finish_reason == "tool_calls" and finish.usage is None
    assert usage.choices == [] and usage.usage is not None
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens) == (20, 7)


def test_chat_stream_helper_accumulates(serve: Any) -> None:
    emu = serve(Turn(text="Checking", tool_calls=[WEATHER]))
    with oai(emu) as client, client.chat.completions.stream(
        model="gpt-4o", messages=USER_HI
    ) as stream:
        final = stream.get_final_completion()
    msg = final.choices[0].message
    assert msg.content == "Checking"
    assert msg.tool_calls is not None
    assert msg.tool_calls[0].function.arguments == '{"city":"Paris"}'
    # Without include_usage the chunks carry no usage at all.
    assert final.usage is None


def test_explicit_chunks_are_sent_as_given(serve: Any) -> None:
    emu = serve(Turn(chunks=["Hel", "lo, ", "world"]))
    with oai(emu) as client:
        deltas = [
            c.choices[0].delta.content
            for c in client.chat.completions.create(model="m", messages=USER_HI, stream=True)
            if c.choices and c.choices[0].delta.content
        ]
    assert deltas == ["Hel", "lo, ", "world"]


# ----------------------------------------------------------------- OpenAI responses


def test_responses_plain(serve: Any) -> None:
    emu = serve(Turn(text="Sure.", tool_calls=[WEATHER], usage=Usage(30, 9)))
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    with oai(emu) as client:
        out = client.responses.create(
            model="gpt-4.1", input="weather?", instructions="be brief", tools=tools  # type: ignore[arg-type]
        )
    assert isinstance(out, Response)
    assert out.object == "response" and out.status == "completed"
    assert out.id.startswith("resp_") and out.model == "gpt-4.1"
    assert out.instructions == "be brief"
    message, call = out.output
    assert isinstance(message, ResponseOutputMessage)
    assert message.id.startswith("msg_") and message.status == "completed"
    assert message.content[0].type == "output_text" and out.output_text == "Sure."
    assert isinstance(call, ResponseFunctionToolCall)
    assert call.name == "get_weather" and call.call_id.startswith("call_")
    assert call.id is not None and call.id.startswith("fc_")
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert out.tools[0].type == "function"
    assert out.usage is not None
    assert (out.usage.input_tokens, out.usage.output_tokens, out.usage.total_tokens) == (30, 9, 39)
    assert out._request_id == emu.requests[0].request_id


def test_responses_streamed(serve: Any) -> None:
    emu = serve(Turn(text="Hi there", tool_calls=[WEATHER]), chunk_size=3)
    with oai(emu) as client:
        events = list(client.responses.create(model="gpt-4.1", input="hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 3,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        *["response.function_call_arguments.delta"] * 6,
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == ["Hi ", "the", "re"]
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert done.output_index == 1 and json.loads(done.arguments) == {"city": "Paris"}
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == "Hi there" and completed.response.usage is not None
    assert events[0].type == "response.created" and events[0].response.status == "in_progress"
    # The SDK's own stream helper accepts the sequence and rebuilds the same response.
    emu.load(emu.script)
    with oai(emu) as client, client.responses.stream(model="gpt-4.1", input="hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == "Hi there" and final.id == completed.response.id


# ----------------------------------------------------------------- Anthropic


def test_anthropic_create(serve: Any) -> None:
    emu = serve(Turn(text="Let me check.", tool_calls=[WEATHER], model="claude-test-1",
                     usage=Usage(40, 11, cached_tokens=5)))  # fmt: skip
    with ant(emu) as client:
        msg = client.messages.create(model="claude-x", max_tokens=64, messages=USER_HI)
    assert isinstance(msg, Message)
    assert msg.id.startswith("msg_01") and msg.type == "message" and msg.role == "assistant"
    assert msg.model == "claude-test-1" and msg.stop_reason == "tool_use"
    text, tool = msg.content
    assert isinstance(text, TextBlock) and text.text == "Let me check."
    assert isinstance(tool, ToolUseBlock)
    assert tool.id.startswith("toolu_01") and tool.name == "get_weather"
    assert tool.input == {"city": "Paris"}
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (40, 11)
    assert msg.usage.cache_read_input_tokens == 5
    [req] = emu.requests
    assert msg._request_id == req.request_id and req.request_id.startswith("req_011C")
    assert req.endpoint == "messages" and req.headers["anthropic-version"]


def test_anthropic_stream_text_and_tool_use(serve: Any) -> None:
    emu = serve(Turn(text="Looking it up", tool_calls=[WEATHER], usage=Usage(8, 21)),
                chunk_size=5)  # fmt: skip
    with ant(emu) as client:
        with client.messages.stream(model="claude-x", max_tokens=64, messages=USER_HI) as stream:
            kinds = [event.type for event in stream]
            final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "input_json" in kinds and "text" in kinds and "message_delta" in kinds
    assert final.stop_reason == "tool_use"
    text, tool = final.content
    assert text.type == "text" and text.text == "Looking it up"
    assert tool.type == "tool_use" and tool.name == "get_weather"
    assert tool.input == {"city": "Paris"}
    assert (final.usage.input_tokens, final.usage.output_tokens) == (8, 21)


def test_anthropic_raw_sse_has_event_lines_and_ping(serve: Any) -> None:
    emu = serve(Turn(text="ok"))
    body = {"model": "claude-x", "max_tokens": 8, "messages": USER_HI, "stream": True}
    response = httpx2.post(emu.url + "/v1/messages", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["request-id"].startswith("req_011C")
    frames = [f for f in response.text.split("\n\n") if f]
    names = [f.split("\n")[0].removeprefix("event: ") for f in frames]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]  # fmt: skip
    for frame, name in zip(frames, names, strict=True):
        assert json.loads(frame.split("\n")[1].removeprefix("data: "))["type"] == name


# ----------------------------------------------------------------- async clients


async def test_async_openai_and_anthropic(serve: Any) -> None:
    emu = serve(Turn(text="async hello", repeat=True), chunk_size=4)
    async with openai.AsyncOpenAI(
        base_url=emu.openai_base_url, api_key="k", max_retries=0
    ) as oclient:
        plain = await oclient.chat.completions.create(model="m", messages=USER_HI)
        stream = await oclient.chat.completions.create(model="m", messages=USER_HI, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
        events = [e.type async for e in await oclient.responses.create(
            model="m", input="hi", stream=True)]  # fmt: skip
    async with anthropic.AsyncAnthropic(base_url=emu.url, api_key="k", max_retries=0) as aclient:
        msg = await aclient.messages.create(model="c", max_tokens=8, messages=USER_HI)
        async with aclient.messages.stream(model="c", max_tokens=8, messages=USER_HI) as astream:
            streamed = "".join([t async for t in astream.text_stream])
            final = await astream.get_final_message()
    assert plain.choices[0].message.content == "async hello" and text == "async hello"
    assert events[-1] == "response.completed"
    assert isinstance(msg.content[0], TextBlock) and msg.content[0].text == "async hello"
    assert streamed == "async hello" and final.stop_reason == "end_turn"
    assert emu.count() == 5 and emu.count("messages") == 2


async def test_parallel_burst_of_calls(serve: Any) -> None:
    emu = serve(Turn(text="same", repeat=True))
    async with openai.AsyncOpenAI(
        base_url=emu.openai_base_url, api_key="k", max_retries=0
    ) as client:
        outs = await asyncio.gather(*(
            client.chat.completions.create(model="m", messages=USER_HI) for _ in range(40)
        ))  # fmt: skip
    assert {o.choices[0].message.content for o in outs} == {"same"}
    assert len({r.request_id for r in emu.requests}) == emu.request_count == 40


# ----------------------------------------------------------------- failures


def test_rate_limit_is_retried_by_both_sdks(serve: Any) -> None:
    limited = Turn(text="finally", failures=[Failure.rate_limit(retry_after=0.01)] * 2)
    emu = serve(limited)
    started = time.monotonic()
    with oai(emu, retries=2) as client:
        out = client.chat.completions.create(model="m", messages=USER_HI)
    assert out.choices[0].message.content == "finally"
    log = emu.requests
    assert [r.outcome for r in log] == ["failed", "failed", "answered"]
    assert [r.status for r in log] == [429, 429, 200]
    assert [r.headers["x-stainless-retry-count"] for r in log] == ["0", "1", "2"]
    emu.load(Script([limited]), clear_log=True)
    with ant(emu, retries=2) as aclient:
        msg = aclient.messages.create(model="c", max_tokens=8, messages=USER_HI)
    assert isinstance(msg.content[0], TextBlock) and msg.content[0].text == "finally"
    assert [r.outcome for r in emu.requests] == ["failed", "failed", "answered"]
    # retry-after (10 ms) was honoured, not the SDKs' default 0.5 s+ backoff.
    assert time.monotonic() - started < 1.5


def test_rate_limit_error_bodies(serve: Any) -> None:
    emu = serve(Turn(text="x", failures=[Failure.rate_limit(retry_after=3)] * 2))
    with oai(emu) as client, pytest.raises(openai.RateLimitError) as oerr:
        client.chat.completions.create(model="m", messages=USER_HI)
    assert oerr.value.status_code == 429
    assert oerr.value.response.headers["retry-after"] == "3"
    assert oerr.value.code == "rate_limit_exceeded"
    assert oerr.value.request_id == emu.requests[0].request_id
    with ant(emu) as aclient, pytest.raises(anthropic.RateLimitError) as aerr:
        aclient.messages.create(model="c", max_tokens=8, messages=USER_HI)
    body = aerr.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert body["request_id"] == emu.requests[1].request_id == aerr.value.request_id


def test_server_error(serve: Any) -> None:
    emu = serve(Turn(text="x", failures=[Failure.server_error(message="boom")] * 2))
    with oai(emu) as client, pytest.raises(openai.InternalServerError) as oerr:
        client.chat.completions.create(model="m", messages=USER_HI)
    assert oerr.value.status_code == 500
    assert oerr.value.body == {"message": "boom", "type": "server_error", "param": None,
                               "code": None}  # fmt: skip
    with ant(emu) as aclient, pytest.raises(anthropic.InternalServerError) as aerr:
        aclient.messages.create(model="c", max_tokens=8, messages=USER_HI)
    assert isinstance(aerr.value.body, dict) and aerr.value.body["error"]["type"] == "api_error"
    with ant(emu) as aclient:  # failures used up: the answer follows
        assert aclient.messages.create(model="c", max_tokens=8, messages=USER_HI).content


def test_dropped_stream_raises_in_both_sdks(serve: Any) -> None:
    turn = Turn(text="Hello there, friend", failures=[Failure.drop(after=3)])
    emu = serve(turn, chunk_size=5)
    received: list[str] = []
    with oai(emu) as client:
        stream = client.chat.completions.create(model="m", messages=USER_HI, stream=True)
        with pytest.raises(openai.APIConnectionError):
            for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
        assert received == ["", "Hello", " ther"]  # role chunk + two fragments, then the cut
        again = client.chat.completions.create(model="m", messages=USER_HI)
    assert again.choices[0].message.content == "Hello there, friend"
    assert [r.outcome for r in emu.requests] == ["dropped", "answered"]

    emu.load(Script([turn], chunk_size=5))
    # anthropic 2.17 wraps the transport's error as openai does (2.16 let it through)
    with ant(emu) as aclient, pytest.raises(anthropic.APIConnectionError) as info:
        with aclient.messages.stream(model="c", max_tokens=8, messages=USER_HI) as astream:
            for _ in astream:
                pass
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)


def test_drop_before_response_on_non_stream(serve: Any) -> None:
    emu = serve(Turn(text="x", failures=[Failure.drop()]))
    with oai(emu) as client, pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=USER_HI)
    assert emu.requests[0].outcome == "dropped" and emu.requests[0].status is None


# ----------------------------------------------------------------- scripting


def test_branching_on_tool_result_and_user_text(serve: Any) -> None:
    emu = serve(
        Turn(tool_calls=[WEATHER], when=When(last_user_contains="weather")),
        Turn(text="Take sunglasses.", when=When(tool_result_contains="sunny"), group="forecast"),
        Turn(text="Take an umbrella.", when=When(tool_result_contains="rain"), group="forecast"),
        Turn(text="Bye.", repeat=True),
    )

    def ask(result: str) -> str | None:
        with oai(emu) as client:
            first = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "weather in Paris?"}]
            )
            call = first.choices[0].message.tool_calls
            assert call is not None
            messages: list[Any] = [
                {"role": "user", "content": "weather in Paris?"},
                first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call[0].id, "content": result},
            ]
            return client.chat.completions.create(model="m", messages=messages).choices[
                0
            ].message.content

    assert ask("light rain, 12C") == "Take an umbrella."
    with oai(emu) as client:  # the other alternative was skipped; the fallback repeats
        assert client.chat.completions.create(model="m", messages=USER_HI).choices[
            0
        ].message.content == "Bye."
    emu.reset()
    assert ask("sunny, 25C") == "Take sunglasses."
    assert [r.turn for r in emu.requests] == [0, 1]


def test_unmatched_request_is_a_400(serve: Any) -> None:
    emu = serve(Turn(text="only for claude", when=When(endpoint="messages")))
    with oai(emu) as client, pytest.raises(openai.BadRequestError, match="no scripted turn"):
        client.chat.completions.create(model="m", messages=USER_HI)
    assert len(emu.unmatched) == 1 and emu.request_count == 1
    with ant(emu) as aclient:
        assert aclient.messages.create(model="c", max_tokens=8, messages=USER_HI).content


def test_anthropic_tool_result_branch_and_responses_function_output(serve: Any) -> None:
    emu = serve(
        Turn(text="claude saw it", when=When(tool_result_contains="42", endpoint="messages")),
        Turn(text="responses saw it", when=When(tool_result_contains="43", system_contains="sys")),
    )
    tool_use = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
    result = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [{"type": "text", "text": "answer 42"}],
    }
    messages: list[Any] = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [tool_use]},
        {"role": "user", "content": [result]},
    ]
    with ant(emu) as aclient:
        msg = aclient.messages.create(model="c", max_tokens=8, messages=messages)
    assert isinstance(msg.content[0], TextBlock) and msg.content[0].text == "claude saw it"
    items: list[Any] = [
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "answer 43"},
    ]
    with oai(emu) as client:
        out = client.responses.create(model="m", input=items, instructions="sys prompt")
    assert out.output_text == "responses saw it"


def test_replace_from_answers_differently_from_step_n(serve: Any) -> None:
    emu = serve(Turn(text="one"), Turn(text="two"), Turn(text="three"))
    with oai(emu) as client:

        def say() -> str | None:
            return client.chat.completions.create(model="m", messages=USER_HI).choices[
                0
            ].message.content

        assert [say(), say(), say()] == ["one", "two", "three"]
        emu.replace_from(1, [Turn(text="TWO"), Turn(text="THREE")])
        assert emu.cursor == 1 and [t.text for t in emu.script.turns] == ["one", "TWO", "THREE"]
        assert [say(), say()] == ["TWO", "THREE"]
        emu.load(Script([Turn(text="fresh")]))
        assert say() == "fresh"
    assert emu.request_count == 6


def test_finish_reason_length_maps_per_provider(serve: Any) -> None:
    emu = serve(Turn(text="cut sho", finish_reason="length", repeat=True))
    with oai(emu) as client:
        chat = client.chat.completions.create(model="m", messages=USER_HI)
        resp = client.responses.create(model="m", input="hi")
        events = list(client.responses.create(model="m", input="hi", stream=True))
    with ant(emu) as aclient:
        msg = aclient.messages.create(model="c", max_tokens=8, messages=USER_HI)
    assert chat.choices[0].finish_reason == "length"
    assert resp.status == "incomplete" and resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens"
    assert events[-1].type == "response.incomplete"
    assert msg.stop_reason == "max_tokens"


def test_latency_per_chunk_is_honoured(serve: Any) -> None:
    emu = serve(Turn(text="abcdef", chunk_size=1, latency_ms=40))
    arrivals: list[float] = []
    with oai(emu) as client:
        start = time.monotonic()
        for chunk in client.chat.completions.create(model="m", messages=USER_HI, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.monotonic() - start)
    assert len(arrivals) == 6
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) > 0.025, gaps
    assert 0.2 < arrivals[-1] < 2.0


def _raw_exchange(port: int, path: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + payload)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_deterministic_byte_identical_responses() -> None:
    script = Script(
        [Turn(text="same bytes", tool_calls=[WEATHER], repeat=True)], seed=7, chunk_size=3
    )
    requests: list[tuple[str, dict[str, Any]]] = [
        ("/v1/chat/completions", {"model": "m", "messages": USER_HI}),
        ("/v1/chat/completions", {"model": "m", "messages": USER_HI, "stream": True}),
        ("/v1/responses", {"model": "m", "input": "hi", "stream": True}),
        ("/v1/messages", {"model": "c", "max_tokens": 8, "messages": USER_HI, "stream": True}),
        ("/v1/messages", {"model": "c", "max_tokens": 8, "messages": USER_HI}),
    ]
    runs = []
    for seed in (7, 7, 8):
        with Emulator(Script(script.turns, seed=seed, chunk_size=3)) as emu:
            runs.append([_raw_exchange(emu.port, path, body) for path, body in requests])
    assert runs[0] == runs[1]
    assert all(r.startswith(b"HTTP/1.1 200 OK\r\n") for r in runs[0])
    assert b"Date: Tue, 14 Nov 2023 22:13:20 GMT" in runs[0][0]
    assert runs[0][0] != runs[2][0]  # another seed, other ids


# ----------------------------------------------------------------- script files and CLI


def test_script_json_round_trip_and_validation(tmp_path: Path) -> None:
    script = Script(
        [
            Turn(name="a", text="hi", usage=Usage(1, 2), when=When(stream=False, model="m"),
                 failures=[Failure.rate_limit(0.5), Failure.drop(after=2)]),
            Turn(chunks=["x", "y"], tool_calls=[ToolCall("f", {"a": 1}, chunks=['{"a"', ":1}"])],
                 finish_reason="length", group="g", repeat=True, latency_ms=5),
        ],
        seed=3,
        model="default-model",
    )  # fmt: skip
    path = tmp_path / "script.json"
    script.save(path)
    assert Script.load(path) == script
    with pytest.raises(ScriptError, match=r"turns\[0\]: unknown key\(s\) 'txt'"):
        Script.from_dict({"turns": [{"txt": "typo"}]})
    with pytest.raises(ScriptError, match="chunks do not join"):
        Turn(text="abc", chunks=["ab"])
    with pytest.raises(ScriptError, match="finish_reason"):
        Turn.from_dict({"finish_reason": "done"})
    with pytest.raises(ScriptError, match="expected int"):
        Script.from_dict({"seed": True})


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise TimeoutError("emulator CLI did not start")
    return proc.stdout.readline()


def test_cli_serves_a_script_file_with_admin_routes(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"turns": [{"text": "from the CLI", "model": "cli-model"}]}))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "fixtures.emulator", "--script", str(path), "--port", "0"]
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as proc:
        try:
            url = _readline(proc, timeout=10).strip().removeprefix("listening on ")
            assert url.startswith("http://127.0.0.1:")
            with openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client:
                out = client.chat.completions.create(model="m", messages=USER_HI)
            assert out.choices[0].message.content == "from the CLI" and out.model == "cli-model"
            with urllib.request.urlopen(url + "/_emulator/requests", timeout=5) as resp:
                log = json.load(resp)
            assert log["count"] == 1 and log["requests"][0]["outcome"] == "answered"
            new = json.dumps({"turns": [{"text": "swapped"}]}).encode()
            request = urllib.request.Request(url + "/_emulator/script", data=new, method="POST")
            with urllib.request.urlopen(request, timeout=5) as resp:
                assert json.load(resp) == {"ok": True, "turns": 1, "cursor": 0}
            with openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client:
                out = client.chat.completions.create(model="m", messages=USER_HI)
            assert out.choices[0].message.content == "swapped"
        finally:
            proc.terminate()
            assert proc.wait(timeout=10) == 0
