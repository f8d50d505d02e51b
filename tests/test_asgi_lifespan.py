"""The ASGI lifespan a replayed request runs first (replay/_runs/lifespan.py), with
small real ASGI apps: startup state reaches the request, shutdown is sent, an app
without lifespan support is served without it, a failed startup is our error, and
the lifespan belongs to no run even when one is open around it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import replay
from replay._capture import tasks as _tasks
from replay._runs.entry import Response, send_request
from replay._runs.lifespan import LifespanError, lifespan

Message = dict[str, Any]


class App:
    """An ASGI app with a lifespan that puts a value in the state, and a request
    handler that answers with what it finds there."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.events: list[str] = []
        self.in_run: list[bool] = []

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.events.append(message["type"])
                self.in_run.append(_tasks.CURRENT.get() is not None)
                if message["type"] == "lifespan.startup":
                    if self.fail:
                        await send({"type": "lifespan.startup.failed", "message": "no db"})
                        return
                    scope["state"]["pool"] = "the pool"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = str(scope["state"].get("pool", "none")).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


async def no_lifespan(scope: Message, receive: Any, send: Any) -> None:
    """An app that only speaks HTTP, as many raw ASGI apps do."""
    assert scope["type"] == "http", "unsupported scope"
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_startup_state_reaches_the_request_and_shutdown_follows() -> None:
    app = App()

    async def main() -> Response:
        async with lifespan(app) as state:
            assert app.events == ["lifespan.startup"]
            return await send_request(app, {"method": "GET", "path": "/"}, b"", state)
    answer = asyncio.run(main())
    assert (answer.status, answer.body) == (200, b"the pool")
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]


def test_without_the_lifespan_the_request_sees_no_state() -> None:
    app = App()
    answer = asyncio.run(send_request(app, {"method": "GET", "path": "/"}, b""))
    assert answer.body == b"none" and app.events == []


def test_an_app_without_lifespan_support_is_served_without_it() -> None:
    async def main() -> Response:
        async with lifespan(no_lifespan) as state:
            assert state == {}
            return await send_request(no_lifespan, {"method": "GET", "path": "/"}, b"", state)
    assert asyncio.run(main()).status == 204


def test_a_failed_startup_is_our_error_with_the_apps_message() -> None:
    async def main() -> None:
        async with lifespan(App(fail=True)):
            raise AssertionError("the request must not be sent")
    with pytest.raises(LifespanError, match="lifespan startup failed: no db") as err:
        asyncio.run(main())
    assert isinstance(err.value, replay.ReplayError)


def test_the_lifespan_belongs_to_no_run_even_inside_an_open_one(tmp_path: Any) -> None:
    app = App()

    async def main() -> None:
        assert _tasks.CURRENT.get() is not None  # the recording is open here
        async with lifespan(app):
            pass
    with replay.record(str(tmp_path / "r.replay")):
        asyncio.run(main())
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]
    assert app.in_run == [False, False]
