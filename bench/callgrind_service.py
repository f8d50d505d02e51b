"""Instructions a recorded service request costs over an unrecorded one, for callgrind.

Not a goal bench (``make bench`` does not run it): the figure the service
recording work quotes, free of the machine's load. One process, no server, no
socket: bench/_service_app.py's FastAPI app (with ``RecordingMiddleware`` as
``BENCH_RECORDING`` says: ``off``, ``all`` or ``failed``) called as uvicorn
calls it, ``--batch`` requests at a time on one event loop (as concurrent
clients keep it), its openai client's connection pool answering every chat
call at once as httpcore does. Every 20th request answers 500 (kept by
``failed``). Run it under callgrind with two request counts per mode; the
difference over the difference in N is the cost of one request::

    PYTHONHASHSEED=0 BENCH_RECORDING=failed valgrind --tool=callgrind \\
        --callgrind-out-file=OUT python bench/callgrind_service.py 200

Kept runs are committed in the loop's default executor, as uvicorn does.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import httpcore  # noqa: E402

ANSWER = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "lorem ipsum dolor sit amet " * 8}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52},
}).encode()


class Pool:
    """httpcore's async connection pool, answering every request at once."""

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        async for _ in request.stream:  # type: ignore[union-attr]
            pass
        return httpcore.Response(
            200, headers=[(b"Content-Type", b"application/json"),
                          (b"Content-Length", str(len(ANSWER)).encode())],
            content=ANSWER,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": b"OK"})

    async def aclose(self) -> None:
        pass


async def request(app: Any, i: int) -> int:
    body = json.dumps({"question": f"boom {i}" if i % 20 == 19 else f"q {i}"}).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/ask", "raw_path": b"/ask",
             "query_string": b"", "root_path": "", "server": ("127.0.0.1", 8000),
             "client": ("127.0.0.1", 40000 + i),
             "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def drive(app: Any, n: int, batch: int) -> None:
    for start in range(0, n, batch):
        group = range(start, min(n, start + batch))
        codes = await asyncio.gather(*(request(app, i) for i in group))
        assert all(c in (200, 500) for c in codes), codes


def main() -> None:
    n = int(sys.argv[1])
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["REPLAY_STORE"] = tmp
        from bench import _service_app as service
        service.client._client._transport._pool = Pool()  # type: ignore[attr-defined]
        app = service.app

        async def run() -> None:
            await drive(app, 40, batch)  # warm: imports, first run, caches
            await drive(app, n, batch)
            await app({"type": "lifespan", "asgi": {"version": "3.0"}},  # close the recorder
                      _lifespan_receive(), _ignore)
        asyncio.run(run())


def _lifespan_receive() -> Any:
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(messages)
    return receive


async def _ignore(message: dict[str, Any]) -> None:
    pass


if __name__ == "__main__":
    main()
