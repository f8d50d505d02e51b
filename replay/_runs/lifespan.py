"""The ASGI lifespan of an app whose recorded request is replayed.

A server runs an app's lifespan startup once, before any request, and every
request sees the state it left (``scope["state"]``: FastAPI's ``lifespan``
yielding a dict, Starlette's ``request.state``; clients and pools put on
``app.state``). The recording middleware records requests only, so the
startup ran outside any recording; a replayed request needs it run again the
same way, or the handler finds no client. :func:`lifespan` does what uvicorn
does with ``--lifespan auto``: send ``lifespan.startup``, wait for the answer
(an app that does not speak the protocol is used without it), hand the state
to the request, then shut down.

The lifespan task runs in an empty :class:`contextvars.Context`: it belongs to
no run, as it belonged to none when the server started, even when a replay is
already open around the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator
from typing import Any

from replay._cassette.errors import SessionError

SHUTDOWN_TIMEOUT = 10.0
"""Seconds to wait for the app to answer ``lifespan.shutdown``."""


class LifespanError(SessionError):
    """The app's lifespan startup failed, so its recorded request cannot be replayed."""


def serving(kind: str, app: Any) -> contextlib.AbstractAsyncContextManager[dict[str, Any]]:
    """:func:`lifespan` of an ASGI entry's app (``kind`` ``asgi``); for any other
    entry kind nothing runs and the state is empty."""
    if kind == "asgi":
        return lifespan(app)
    return contextlib.nullcontext({})


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
    """Run ``app``'s lifespan startup, yield the state its requests get, shut it down.

    An app that raises on the ``lifespan`` scope type before it finished
    starting (it does not speak the protocol) is served without it, as uvicorn's
    ``auto`` mode does; one that answers ``lifespan.startup.failed`` raises
    :class:`LifespanError` with its message.
    """
    state: dict[str, Any] = {}
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    started: asyncio.Future[bool] = loop.create_future()
    stopped: asyncio.Future[str | None] = loop.create_future()

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete" and not started.done():
            started.set_result(True)
        elif kind == "lifespan.startup.failed" and not started.done():
            started.set_exception(LifespanError(
                f"the app's lifespan startup failed: {message.get('message') or 'no message'}"))
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed") \
                and not stopped.done():
            stopped.set_result(message.get("message") if kind.endswith("failed") else None)

    async def serve() -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": state}
        try:
            await app(scope, receive, send)
        except BaseException:
            if started.done():
                raise
            started.set_result(False)  # the app does not speak lifespan
            return
        if not started.done():
            started.set_result(False)

    task = asyncio.create_task(serve(), context=contextvars.Context())
    await inbox.put({"type": "lifespan.startup"})
    try:
        supported = await started
    except LifespanError:
        task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await task
        raise
    try:
        yield state
    finally:
        if supported and not task.done():
            await inbox.put({"type": "lifespan.shutdown"})
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(stopped), SHUTDOWN_TIMEOUT)
        if not task.done():
            task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await task
