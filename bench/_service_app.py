"""The FastAPI agent endpoint bench/bench_service.py loads on uvicorn.

``POST /ask`` answers ``{"question": ...}`` with one chat call to the LLM
emulator (``BENCH_LLM_URL``) through one ``openai.AsyncOpenAI`` client per
process, as a service would; a question containing "boom" answers 500 after
the model call. ``BENCH_RECORDING``: ``off`` (no middleware), ``all`` or
``failed`` (``replay.RecordingMiddleware`` with that retention, into
``REPLAY_STORE``).
"""

from __future__ import annotations

import gc
import os
import time
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


_gc = {"cpu": 0.0, "t0": 0.0, "gen0": 0, "gen1": 0, "gen2": 0}


def _gc_timer(phase: str, info: dict[str, int]) -> None:
    """The CPU time the garbage collector takes, and its passes per generation."""
    if phase == "start":
        _gc["t0"] = time.process_time()
    else:
        _gc["cpu"] += time.process_time() - _gc["t0"]
        _gc[f"gen{info['generation']}"] += 1


gc.callbacks.append(_gc_timer)


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "recording": MODE}


@app.get("/gc")
def gc_stats() -> dict[str, float]:
    """The garbage collector's CPU seconds and passes so far (bench_service.py reads it
    around each round)."""
    return dict(_gc)
