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

A server runs the lifespan once for all the requests it serves, and apps
rely on that (a startup that puts a client on ``app.state``, a shutdown that
closes it): :func:`hosted` shares one lifespan among the replays of an app
that overlap in one event loop and keeps those of other loops (threads) from
overlapping it.

The lifespan task runs in an empty :class:`contextvars.Context`: it belongs to
no run, as it belonged to none when the server started, even when a replay is
already open around the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from replay._cassette.errors import SessionError

SHUTDOWN_TIMEOUT = 10.0
"""Seconds to wait for the app to answer ``lifespan.shutdown``."""


class LifespanError(SessionError):
    """The app's lifespan startup failed, so its recorded request cannot be replayed."""


def serving(kind: str, app: Any) -> contextlib.AbstractAsyncContextManager[dict[str, Any]]:
    """The lifespan of an ASGI entry's app (``kind`` ``asgi``), shared with the other
    replays of the same app object in this process (:func:`hosted`); for any
    other entry kind nothing runs and the state is empty."""
    if kind == "asgi":
        return hosted(app)
    return contextlib.nullcontext({})


@dataclass(eq=False)
class _Host:
    """One app object's lifespan, shared by the replays that overlap in its loop."""

    loop: asyncio.AbstractEventLoop
    users: int = 1
    closing: bool = False
    started: asyncio.Event = field(default_factory=asyncio.Event)
    state: dict[str, Any] | None = None
    serve: contextlib.AbstractAsyncContextManager[dict[str, Any]] | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


_HOSTS: dict[int, tuple[Any, _Host]] = {}
_HOSTS_LOCK = threading.Lock()


@contextlib.asynccontextmanager
async def hosted(app: Any) -> AsyncIterator[dict[str, Any]]:
    """:func:`lifespan` of ``app`` as a server runs it: once for all the requests it
    serves at a time. A server starts an app's lifespan once per process, and apps
    rely on that: a startup that puts a client on ``app.state`` (Litestar's,
    Starlette's) and a shutdown that closes ``app.state``'s client assume no
    other lifespan of the same app object runs meanwhile. So replays of one app
    that overlap in one event loop share one lifespan (the first starts it, the
    last shuts it down); a replay in another loop (another thread's
    ``asyncio.run``) waits until that lifespan has shut down, then starts its own."""
    loop = asyncio.get_running_loop()
    while True:
        with _HOSTS_LOCK:
            held = _HOSTS.get(id(app))
            if held is None:
                host = _Host(loop)
                _HOSTS[id(app)] = (app, host)
                owner = True
                break
            host = held[1]
            if host.loop is loop and not host.closing:
                host.users += 1
                owner = False
                break
        while not host.done.is_set():  # another loop's lifespan of this app: wait it out
            await asyncio.sleep(0.005)
    if owner:
        host.serve = lifespan(app)
        try:
            host.state = await host.serve.__aenter__()
        except BaseException as exc:
            host.error = exc
            _release(app, host, last=True)
            raise
        finally:
            host.started.set()
    else:
        await host.started.wait()
        if host.error is not None:
            _release(app, host, last=False)
            raise LifespanError(str(host.error))
    try:
        yield host.state if host.state is not None else {}
    finally:
        with _HOSTS_LOCK:
            host.users -= 1
            last = host.users == 0 and host.error is None
            if last:
                host.closing = True
        if last and host.serve is not None:
            try:
                await host.serve.__aexit__(None, None, None)
            finally:
                _release(app, host, last=True)


def _release(app: Any, host: _Host, *, last: bool) -> None:
    if not last:
        with _HOSTS_LOCK:
            host.users -= 1
        return
    with _HOSTS_LOCK:
        held = _HOSTS.get(id(app))
        if held is not None and held[1] is host:
            del _HOSTS[id(app)]
    host.done.set()


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
