"""The ASGI lifespan a replayed request runs first (replay/_runs/lifespan.py), with
small real ASGI apps: startup state reaches the request, shutdown is sent, an app
without lifespan support is served without it, a failed startup is our error, and
the lifespan belongs to no run even when one is open around it."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import replay
from replay._capture import tasks as _tasks
from replay._runs.entry import Response, send_request
from replay._runs.lifespan import LifespanError, lifespan, serving

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


class StateApp:
    """As Litestar and Starlette apps often do: the lifespan opens a client on the
    app object (``app.state``) and closes that attribute's client at shutdown; a
    request uses whatever client the app holds."""

    def __init__(self) -> None:
        self.client: dict[str, bool] | None = None
        self.starts = 0

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.starts += 1
                    self.client = {"open": True}
                    await send({"type": "lifespan.startup.complete"})
                else:
                    assert self.client is not None
                    self.client["open"] = False  # close what the app holds now
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await asyncio.sleep(0.02)  # a model call
        assert self.client is not None
        body = b"open" if self.client["open"] else b"closed"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


async def _replayed(app: StateApp) -> bytes:
    async with serving("asgi", app) as state:
        await asyncio.sleep(0.01)
        return (await send_request(app, {"method": "GET", "path": "/"}, b"", state)).body


def test_replays_of_one_app_in_several_threads_never_share_a_lifespan_half_shut() -> None:
    # Each thread's replay runs the app's lifespan in its own loop; before, one
    # replay's shutdown closed the client another replay's request was using.
    app = StateApp()
    with ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda _: asyncio.run(_replayed(app)), range(12)))
    assert bodies == [b"open"] * 12
    assert app.starts == 12 and app.client == {"open": False}


def test_replays_of_one_app_in_one_loop_share_its_lifespan_as_a_server_does() -> None:
    app = StateApp()

    async def main() -> list[bytes]:
        return list(await asyncio.gather(*(_replayed(app) for _ in range(5))))
    assert asyncio.run(main()) == [b"open"] * 5
    assert app.starts == 1 and app.client == {"open": False}
    assert asyncio.run(_replayed(app)) == b"open" and app.starts == 2  # a new one after
