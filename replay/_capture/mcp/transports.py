"""MCP transports: which server a session talks to, and none started on strict replay.

``stdio_client``, ``streamable_http_client`` and ``sse_client`` are wrapped. While
recording they run as they are, their set-up and exit with ``BUSY`` set (the
transport's own traffic is not the agent's: the HTTP transport's httpx2 requests,
the stdio exit's polling sleeps), and the read stream they yield is remembered
with the server's label until they close. On strict replay they yield streams
with nothing at the other end: no process, no HTTP client, no task. The stdio
process spawn itself refuses to run on strict replay, whatever path reached it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import types
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from replay._capture.session import BUSY, current
from replay._cassette.errors import ReplayError


class ServerNotStartedError(ReplayError):
    """Strict replay refused to start or reach an MCP server: ``server`` names it."""

    def __init__(self, server: str, detail: str) -> None:
        self.server = server
        super().__init__(f"MCP server {server!r} is not started during replay: {detail}")


OPEN: dict[int, tuple[object, str, bool]] = {}
"""id(read stream) -> (the stream, server label, connected to nothing), while the
transport is open. (The HTTP transport's streams cannot be weakly referenced.)"""


def stdio_label(server: Any) -> str:
    """``stdio:`` + the command's base name and its arguments (absolute paths by base
    name): the same on every machine."""
    words = [str(getattr(server, "command", "?")), *map(str, getattr(server, "args", ()) or ())]
    return "stdio:" + " ".join(os.path.basename(w) if os.path.isabs(w) else w for w in words)


def url_label(url: Any) -> str:
    """The endpoint URL without user info (credentials never name a server)."""
    parts = urlsplit(str(url))
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


@contextlib.asynccontextmanager
async def unconnected(label: str) -> AsyncIterator[tuple[Any, Any]]:
    """What a transport yields on strict replay: streams with nothing at the other end.

    Like the SDK's transports, the caller's block runs inside a task group (with no
    task in it), so an error raised there reaches the caller wrapped as it did live.
    """
    import anyio

    send_in, read = anyio.create_memory_object_stream[Any](0)
    write, receive_out = anyio.create_memory_object_stream[Any](0)
    OPEN[id(read)] = (read, label, True)
    try:
        async with send_in, read, write, receive_out, anyio.create_task_group():
            yield read, write
    finally:
        OPEN.pop(id(read), None)


def transport(label_of: Callable[..., str]) -> Callable[[Any], Any]:
    """A wrapper maker for a transport function (an async context manager)."""
    def make(original: Any) -> Any:
        @contextlib.asynccontextmanager
        async def wrapped(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            s = current()
            if s is None:
                async with original(*args, **kwargs) as streams:
                    yield streams
                return
            label = label_of(*args, **kwargs)
            if s.replaying:
                async with unconnected(label) as streams:
                    yield streams
                return
            busy: Any = BUSY.set(True)  # set-up and exit: the transport's own traffic
            try:
                async with original(*args, **kwargs) as streams:
                    BUSY.reset(busy)
                    busy = None
                    OPEN[id(streams[0])] = (streams[0], label, False)
                    try:
                        yield streams
                    finally:
                        OPEN.pop(id(streams[0]), None)
                        busy = BUSY.set(True)
            finally:
                if busy is not None:
                    BUSY.reset(busy)
        functools.update_wrapper(wrapped, original)
        return wrapped
    return make


def stdio_label_of(server: Any, *args: Any, **kwargs: Any) -> str:
    """The label of ``stdio_client(server, ...)``."""
    return stdio_label(server)


def url_label_of(prefix: str) -> Callable[..., str]:
    """The label of ``streamable_http_client(url, ...)`` / ``sse_client(url, ...)``."""
    def label(*args: Any, **kwargs: Any) -> str:
        return prefix + url_label(args[0] if args else kwargs.get("url", "?"))
    return label


def no_process(original: Any) -> Any:
    """The stdio transport's process spawn: refused under strict replay, whatever path
    reached it (a ``stdio_client`` bound before the run, a copy of it)."""
    @functools.wraps(original)
    async def spawn(*args: Any, **kwargs: Any) -> Any:
        s = current()
        if s is not None and s.replaying:
            command = kwargs.get("command", args[0] if args else "?")
            server = stdio_label(types.SimpleNamespace(command=command,
                                                       args=kwargs.get("args", ())))
            raise ServerNotStartedError(server, "the run tried to start its process")
        return await original(*args, **kwargs)
    return spawn
