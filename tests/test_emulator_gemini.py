"""The local LLM emulator's Gemini routes, driven by the real ``google-genai`` SDK.

Every test turns warnings into errors: the SDK warns when a response does not fit
its types (a wrong value type, an unknown enum member), and a response field the
types do not know is dropped silently, which ``assert_known_fields`` catches.
"""

from __future__ import annotations

import copy
import json
import sys
import typing
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest

genai = pytest.importorskip("google.genai")
from google.genai import errors, types  # noqa: E402

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

pytestmark = [
    pytest.mark.filterwarnings("error"),
    # The SDK's own aiohttp session subclass, not anything in a response.
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
]

MODEL = "gemini-2.5-flash"
WEATHER = ToolCall("get_weather", {"city": "Paris"})
WEATHER_TOOL = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather", description="Forecast for a city.",
    parameters=types.Schema(type=types.Type.OBJECT,
                            properties={"city": types.Schema(type=types.Type.STRING)}),
)])  # fmt: skip


@pytest.fixture
def serve(emulator: Callable[..., Emulator]) -> Callable[..., Emulator]:
    """``serve(*turns, **script_options)``: the shared ``emulator`` fixture (conftest)."""
    return emulator


def gem(emu: Emulator, *, api_version: str | None = None, attempts: int = 1,
        async_transport: Any = None) -> Any:
    """A ``genai.Client`` on the emulator; no retries unless ``attempts`` > 1."""
    retry = types.HttpRetryOptions(attempts=attempts, initial_delay=0.0, jitter=0.0)
    options = types.HttpOptions(
        base_url=emu.gemini_base_url, api_version=api_version, retry_options=retry,
        async_client_args={"transport": async_transport} if async_transport else None,
    )  # fmt: skip
    return genai.Client(api_key="test-gemini-key", http_options=options)


def raw_post(emu: Emulator, target: str, body: Any) -> tuple[int, dict[str, str], bytes]:
    """POST with urllib (no SDK), returning status, headers and the body bytes."""
    request = urllib.request.Request(
        emu.url + target, data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "x-goog-api-key": "k"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _model_of(annotation: Any) -> type[pydantic.BaseModel] | None:
    """The pydantic model inside ``Optional[X]`` / ``list[X]``, if any."""
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, pydantic.BaseModel):
            return arg
        inner = typing.get_args(arg)
        if inner and isinstance(inner[0], type) and issubclass(inner[0], pydantic.BaseModel):
            return inner[0]
    return None


def assert_known_fields(model: type[pydantic.BaseModel], data: Any, where: str = "$") -> None:
    """Every key in ``data`` is a field of ``model`` (recursively): none is dropped."""
    model.model_rebuild()
    by_alias = {info.alias or name: info for name, info in model.model_fields.items()}
    for key, value in data.items():
        assert key in by_alias, f"{where}.{key} is not a field of {model.__name__}"
        inner = _model_of(by_alias[key].annotation)
        if inner is None:
            continue
        items = enumerate(value) if isinstance(value, list) else [(None, value)]
        for n, item in items:
            if isinstance(item, dict):
                path = f"{where}.{key}" if n is None else f"{where}.{key}[{n}]"
                assert_known_fields(inner, item, path)


# ----------------------------------------------------------------- the docs' example


def test_gemini_example_from_the_docs() -> None:  # docs/emulator.md shows this test
    script = Script([
        Turn(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
        Turn(text="Take an umbrella.", when=When(tool_result_contains="rain")),
    ])
    with Emulator(script) as emu:
        options = types.HttpOptions(base_url=emu.gemini_base_url)
        with genai.Client(api_key="test", http_options=options) as client:
            ask = types.Content(role="user", parts=[types.Part(text="Umbrella in Paris?")])
            first = client.models.generate_content(model="gemini-2.5-flash", contents=[ask])
            [call] = first.function_calls
            assert (call.name, call.args) == ("get_weather", {"city": "Paris"})
            result = types.Part(function_response=types.FunctionResponse(
                id=call.id, name=call.name, response={"forecast": "rain"}))
            history = [ask, first.candidates[0].content, types.Content(role="user", parts=[result])]
            stream = client.models.generate_content_stream(
                model="gemini-2.5-flash", contents=history)
            assert "".join(chunk.text for chunk in stream) == "Take an umbrella."
    assert [r.path for r in emu.requests] == [
        "/v1/models/gemini-2.5-flash:generateContent",
        "/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
    ]


# ----------------------------------------------------------------- generateContent


@pytest.mark.parametrize("api_version", [None, "v1beta"])
def test_generate_content_plain(serve: Any, api_version: str | None) -> None:
    emu = serve(Turn(text="Bonjour!", model="gemini-2.5-flash-001", usage=Usage(12, 3, 2)))
    with gem(emu, api_version=api_version) as client:
        out = client.models.generate_content(
            model=MODEL, contents="Say hello in French.",
            config=types.GenerateContentConfig(system_instruction="Be brief."),
        )  # fmt: skip
    assert isinstance(out, types.GenerateContentResponse)
    assert out.text == "Bonjour!"
    [candidate] = out.candidates or []
    assert candidate.finish_reason == types.FinishReason.STOP and candidate.index == 0
    assert candidate.content is not None and candidate.content.role == "model"
    assert out.model_version == "gemini-2.5-flash-001"
    assert out.response_id and len(out.response_id) == 23
    usage = out.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (
        12, 3, 15,
    )  # fmt: skip
    assert usage.cached_content_token_count == 2
    [req] = emu.requests
    version = api_version or "v1"  # google-genai >= 2 defaults to v1
    assert req.path == f"/{version}/models/{MODEL}:generateContent"
    assert (req.endpoint, req.outcome, req.turn, req.stream) == ("gemini", "answered", 0, False)
    assert req.headers["x-goog-api-key"] == "test-gemini-key"
    assert "key=" not in req.path and "authorization" not in req.headers
    body = req.json()
    assert body["contents"] == [{"parts": [{"text": "Say hello in French."}], "role": "user"}]
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief."}]


def test_function_call_then_function_response(serve: Any) -> None:
    emu = serve(
        Turn(when=When(endpoint="gemini", has_tool="get_weather",
                       last_user_contains="umbrella"),
             text="Let me check.", tool_calls=[WEATHER, ToolCall("get_time", {}, id="t-1")]),
        Turn(text="Sunglasses.", when=When(tool_result_contains="sunny"), group="forecast"),
        Turn(text="Take an umbrella.", when=When(tool_result_contains="rain"), group="forecast"),
    )  # fmt: skip
    config = types.GenerateContentConfig(
        tools=[WEATHER_TOOL],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    ask = types.Content(role="user", parts=[types.Part(text="Do I need an umbrella in Paris?")])
    with gem(emu) as client:
        first = client.models.generate_content(model=MODEL, contents=[ask], config=config)
        calls = first.function_calls or []
        assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Paris"}),
                                                     ("get_time", {})]  # fmt: skip
        assert calls[0].id and len(calls[0].id) == 8 and calls[1].id == "t-1"
        assert first.candidates and first.candidates[0].finish_reason == types.FinishReason.STOP
        parts = first.candidates[0].content.parts if first.candidates[0].content else None
        assert parts and parts[0].text == "Let me check." and parts[1].function_call is not None
        model_turn = first.candidates[0].content
        assert model_turn is not None
        answers = types.Content(role="user", parts=[
            types.Part(function_response=types.FunctionResponse(
                id=call.id, name=call.name, response={"output": out}))
            for call, out in zip(calls, ["light rain", "09:00"], strict=True)
        ])  # fmt: skip
        second = client.models.generate_content(
            model=MODEL, contents=[ask, model_turn, answers], config=config
        )
    assert second.text == "Take an umbrella."
    assert [r.turn for r in emu.requests] == [0, 2]
    sent = emu.requests[1].json()["contents"]
    assert [c["role"] for c in sent] == ["user", "model", "user"]
    assert sent[1]["parts"][1]["functionCall"] == {
        "id": calls[0].id, "args": {"city": "Paris"}, "name": "get_weather",
    }  # fmt: skip
    assert sent[2]["parts"][0]["functionResponse"] == {
        "id": calls[0].id, "name": "get_weather", "response": {"output": "light rain"},
    }  # fmt: skip


# ----------------------------------------------------------------- streamGenerateContent


def test_stream_splits_text_and_puts_usage_on_the_last_chunk(serve: Any) -> None:
    emu = serve(Turn(text="It will rain in Paris.", usage=Usage(20, 6)), chunk_size=8)
    with gem(emu) as client:
        chunks = list(client.models.generate_content_stream(model=MODEL, contents="Weather?"))
    assert all(isinstance(c, types.GenerateContentResponse) for c in chunks)
    assert [c.text for c in chunks] == ["It will ", "rain in ", "Paris."]
    *head, last = chunks
    assert len({c.response_id for c in chunks}) == 1
    for chunk in head:
        assert chunk.candidates and chunk.candidates[0].finish_reason is None
        assert chunk.usage_metadata is not None
        assert chunk.usage_metadata.prompt_token_count == 20
        assert chunk.usage_metadata.candidates_token_count is None
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None
    assert (last.usage_metadata.candidates_token_count, last.usage_metadata.total_token_count) == (
        6, 26,
    )  # fmt: skip
    [req] = emu.requests
    assert req.path == f"/v1/models/{MODEL}:streamGenerateContent?alt=sse"
    assert (req.endpoint, req.stream, req.outcome) == ("gemini", True, "answered")


def test_stream_tool_calls_come_whole_in_the_last_chunk(serve: Any) -> None:
    emu = serve(Turn(text="Checking", tool_calls=[WEATHER], finish_reason="tool_calls"),
                chunk_size=4)  # fmt: skip
    with gem(emu) as client:
        chunks = list(client.models.generate_content_stream(
            model=MODEL, contents="Weather?",
            config=types.GenerateContentConfig(tools=[WEATHER_TOOL]),
        ))  # fmt: skip
    assert [c.text for c in chunks[:-1]] == ["Chec", "king"]
    last = chunks[-1]
    assert [(c.name, c.args) for c in last.function_calls or []] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP


@pytest.mark.parametrize("backend", ["aiohttp", "httpx2"])
async def test_async_client(serve: Any, backend: str) -> None:
    if backend == "aiohttp":
        pytest.importorskip("aiohttp")  # client.aio uses aiohttp whenever it is installed
        transport = None
    else:
        httpx2 = pytest.importorskip("httpx2")
        transport = httpx2.AsyncHTTPTransport()  # a transport makes client.aio use httpx2
    emu = serve(Turn(text="One answer."), Turn(text="Streamed answer.", usage=Usage(5, 4)),
                Turn(tool_calls=[WEATHER]), chunk_size=9)  # fmt: skip
    async with gem(emu, async_transport=transport).aio as client:
        plain = await client.models.generate_content(model=MODEL, contents="first")
        stream = await client.models.generate_content_stream(model=MODEL, contents="second")
        chunks = [chunk async for chunk in stream]
        call = await client.models.generate_content(model=MODEL, contents="third")
    assert plain.text == "One answer."
    assert [c.text for c in chunks] == ["Streamed ", "answer."]
    assert chunks[-1].usage_metadata and chunks[-1].usage_metadata.total_token_count == 9
    assert call.function_calls and call.function_calls[0].args == {"city": "Paris"}
    assert [r.outcome for r in emu.requests] == ["answered"] * 3
    assert all(r.headers["x-goog-api-key"] == "test-gemini-key" for r in emu.requests)


# ----------------------------------------------------------------- failures


def test_server_error_and_rate_limit_map_to_sdk_errors(serve: Any) -> None:
    emu = serve(Turn(text="ok", failures=[
        Failure.server_error(), Failure.rate_limit(retry_after=0.05), Failure.server_error(503),
    ]))  # fmt: skip
    with gem(emu) as client:
        with pytest.raises(errors.ServerError) as server:
            client.models.generate_content(model=MODEL, contents="hi")
        with pytest.raises(errors.ClientError) as limited:
            client.models.generate_content(model=MODEL, contents="hi")
    assert (server.value.code, server.value.status) == (500, "INTERNAL")
    assert server.value.message and "internal error" in server.value.message
    assert (limited.value.code, limited.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert limited.value.details["error"]["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.05s"}
    ]
    assert [(r.outcome, r.status) for r in emu.requests] == [("failed", 500), ("failed", 429)]
    with gem(emu, attempts=3) as client:  # the SDK retries 5xx/429 only when asked to
        out = client.models.generate_content(model=MODEL, contents="hi")
    assert out.text == "ok"
    assert [r.status for r in emu.requests] == [500, 429, 503, 200]


async def test_async_rate_limit_is_retried(serve: Any) -> None:
    emu = serve(Turn(text="after the wait", failures=[Failure.rate_limit(0.01)]))
    async with gem(emu, attempts=2).aio as client:
        out = await client.models.generate_content(model=MODEL, contents="hi")
    assert out.text == "after the wait"
    assert [r.outcome for r in emu.requests] == ["failed", "answered"]


def test_dropped_stream_and_unmatched_request(serve: Any) -> None:
    emu = serve(Turn(text="Never finished", when=When(stream=True),
                     failures=[Failure.drop(after=1)]))  # fmt: skip
    with gem(emu) as client:
        seen: list[str | None] = []
        with pytest.raises(Exception, match=r"incomplete chunked read"):
            for chunk in client.models.generate_content_stream(model=MODEL, contents="hi"):
                seen.append(chunk.text)
        assert seen == ["Never fi"]
        with pytest.raises(errors.ClientError) as unmatched:
            client.models.generate_content(model=MODEL, contents="hi")
    assert (unmatched.value.code, unmatched.value.status) == (400, "INVALID_ARGUMENT")
    assert "no scripted turn matches" in (unmatched.value.message or "")
    assert [r.outcome for r in emu.requests] == ["dropped", "unmatched"]


# ----------------------------------------------------------------- the wire itself


def test_wire_format_fits_the_sdk_types_and_is_deterministic(serve: Any) -> None:
    turns = (Turn(text="Héllo", tool_calls=[WEATHER], usage=Usage(9, 4, 3), repeat=True),)
    ask = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    bodies = []
    for _ in range(2):
        emu = serve(*turns, chunk_size=3)
        plain = raw_post(emu, f"/v1beta/models/{MODEL}:generateContent", ask)
        emu.reset()  # each call answers the turn afresh, so all three share ids
        sse = raw_post(emu, f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", ask)
        emu.reset()
        array = raw_post(emu, f"/v1beta/models/{MODEL}:streamGenerateContent", ask)
        bodies.append((plain, sse, array))
    assert bodies[0] == bodies[1]  # byte-identical, headers included
    (status, headers, body), (_, sse_headers, sse_body), (_, _, array_body) = bodies[0]
    assert status == 200 and headers["content-type"] == "application/json; charset=UTF-8"
    data = json.loads(body)
    assert_known_fields(types.GenerateContentResponse, data)
    assert data["candidates"][0]["content"]["parts"][1]["functionCall"]["name"] == "get_weather"
    assert sse_headers["content-type"] == "text/event-stream"
    frames = sse_body.decode().split("\r\n\r\n")
    assert frames[-1] == "" and all(f.startswith("data: {") for f in frames[:-1])
    chunks = [json.loads(f[len("data: "):]) for f in frames[:-1]]
    for chunk in chunks:
        assert_known_fields(types.GenerateContentResponse, copy.deepcopy(chunk))
    assert "".join(c["candidates"][0]["content"]["parts"][0].get("text", "")
                   for c in chunks) == "Héllo"  # fmt: skip
    assert json.loads(array_body) == chunks  # the same chunks as one JSON array
    assert {c["responseId"] for c in chunks} == {data["responseId"]}
    assert "Héllo".encode() in body  # UTF-8, not \u escapes


def test_google_error_body_and_unknown_gemini_path(serve: Any) -> None:
    emu = serve(Turn(text="x", failures=[Failure(status=403, message="nope")]))
    status, headers, body = raw_post(emu, f"/v1beta/models/{MODEL}:generateContent", {})
    assert status == 403 and headers["content-type"].startswith("application/json")
    assert json.loads(body) == {
        "error": {"code": 403, "message": "nope", "status": "PERMISSION_DENIED"}
    }
    status, _, body = raw_post(emu, f"/v1beta/models/{MODEL}:countTokens", {})
    assert status == 404 and json.loads(body)["error"]["status"] == "NOT_FOUND"
    assert [r.outcome for r in emu.requests] == ["failed", "not_found"]


def test_gemini_endpoint_in_script_json() -> None:
    script = Script([Turn(text="hi", when=When(endpoint="gemini"))])
    assert Script.loads(script.dumps()).turns[0].when == When(endpoint="gemini")
    with pytest.raises(ScriptError, match="endpoint"):
        When(endpoint="vertex")
