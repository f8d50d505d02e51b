"""The small agent behind the docs' ``my_agent.py`` / ``agent.py`` samples.

tests/test_docs.py copies this file into each page's temporary directory as
``my_agent.py``, ``agent.py`` and ``my_package/agent.py``, and its
``run`` is the ``agent()`` / ``my_agent()`` of the Python samples. It is a
real agent: it reads the clock, random numbers and uuids, sleeps, calls
``@replay.tool`` tools and asks a model twice (plain ``httpx`` against
``$OPENAI_BASE_URL``, the local emulator in the tests).

The docs' event numbers refer to its recording, so keep this order:

    #0 uuid  #1 clock  #2 tool:get_order  #3 clock (a deadline)  #4 random
    #5 tool:check_payment  #6 sleep  #7 tool:check_inventory (in_stock, count)
    #8 clock  #9 http (model call, not streamed)  #10 tool:place_order or
    tool:notify_backorder  #11 random  #12 tool:send_email  #13 clock  #14 uuid
    #15 tool:get_weather  #16 http (model call)  #17 clock

    python my_agent.py [--task "refund order 42"] [--city Paris]
"""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from typing import Any

import httpx

import replay


@replay.tool
def get_order(order_id: str) -> dict[str, Any]:
    """The order service."""
    return {"order_id": order_id, "item": "trail shoes", "total": 49.9}


@replay.tool
def check_payment(order_id: str) -> dict[str, Any]:
    """The payment provider: was the order paid?"""
    return {"order_id": order_id, "paid": True}


@replay.tool(safe=True)
def check_inventory(item: str) -> dict[str, Any]:
    """The warehouse (read-only, safe for drift probes)."""
    return {"item": item, "in_stock": True, "count": 3}


@replay.tool
def place_order(item: str, qty: int) -> dict[str, Any]:
    """Order a replacement."""
    return {"order_id": "ord-7", "item": item, "qty": qty}


@replay.tool
def notify_backorder(item: str) -> dict[str, Any]:
    """Tell the customer the replacement is backordered."""
    return {"item": item, "eta_days": 7}


@replay.tool
def send_email(to: str, subject: str) -> str:
    """Send a confirmation."""
    return f"queued {subject!r} for {to}"


@replay.tool
def get_weather(city: str, unit: str = "C") -> dict[str, Any]:
    """A live weather API, for the delivery estimate."""
    return {"city": city, "temp": 16.4, "unit": unit}


def ask_model(prompt: str) -> str:
    """One chat completion, not streamed."""
    base = os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    reply = httpx.post(f"{base}/chat/completions", timeout=30, json={
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "You are a support agent."},
                     {"role": "user", "content": prompt}]})
    reply.raise_for_status()
    return str(reply.json()["choices"][0]["message"]["content"])


def run(task: str = "refund order 42", city: str = "Paris") -> list[str]:
    """Handle one ticket; returns the transcript (also printed by ``main``)."""
    out = [f"ticket {uuid.uuid4().hex[:8]} opened at {time.time():.3f}: {task}"]
    order = get_order("42")
    deadline = time.time() + 3600
    jitter = random.random()
    payment = check_payment("42")
    time.sleep(0.01 * jitter)
    stock = check_inventory(order["item"])
    out.append(f"checked at {time.time():.3f}: {payment} {stock} deadline {deadline:.1f}")
    answer = ask_model(f"{task}: order {order}, stock {stock}")
    out.append(f"model: {answer}")
    if stock["in_stock"]:
        out.append(f"placed {place_order(order['item'], 1)}")
    else:
        out.append(f"backordered {notify_backorder(order['item'])}")
    out.append(f"priority {random.random():.3f}")
    out.append(send_email("customer@example.com", f"About {task}"))
    out.append(f"sent at {time.time():.3f}, ref {uuid.uuid4().hex[:8]}")
    weather = get_weather(city)
    out.append(f"weather: {weather}")
    out.append(f"model: {ask_model(f'Delivery estimate for {city} given {weather}?')}")
    out.append(f"closed at {time.time():.3f}")
    return out


agent = my_agent = run


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="a small support agent")
    ap.add_argument("--task", default="refund order 42")
    ap.add_argument("--city", default="Paris")
    args = ap.parse_args(argv)
    for line in run(args.task, args.city):
        print(line)


if __name__ == "__main__":
    main()
