"""The FastAPI agent endpoint bench/bench_service.py loads on uvicorn.

``POST /ask`` answers ``{"question": ...}`` with one chat call to the LLM
emulator (``BENCH_LLM_URL``) through one ``openai.AsyncOpenAI`` client per
process, as a service would; a question containing "boom" answers 500 after
the model call. ``BENCH_RECORDING``: ``off`` (no middleware), ``all`` or
``failed`` (``replay.RecordingMiddleware`` with that retention, into
``REPLAY_STORE``).
"""

from __future__ import annotations

import os
from typing import Any

import openai
from fastapi import FastAPI
from fastapi.responses import JSONResponse

import replay

MODE = os.environ.get("BENCH_RECORDING", "off")

app = FastAPI()
if MODE != "off":
    app.add_middleware(replay.RecordingMiddleware, keep=MODE,  # type: ignore[attr-defined]
                       tags=["bench"])

client = openai.AsyncOpenAI(base_url=os.environ.get("BENCH_LLM_URL", "http://127.0.0.1:9/v1"),
                            api_key="sk-bench-" + "k" * 24, max_retries=0)


@app.post("/ask")
async def ask(payload: dict[str, Any]) -> Any:
    question = str(payload.get("question", ""))
    reply = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
    body = {"answer": reply.choices[0].message.content}
    return JSONResponse(body, status_code=500 if "boom" in question else 200)


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "recording": MODE}
