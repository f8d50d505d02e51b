"""Logical task hooks: every asyncio task, thread and executor work item of a run
gets a stable id (see :mod:`replay._capture.tasks`) when it is made.

Patched while any session is open; a task, thread or work item belongs to the
run of the code that made it (none when that code is outside every run).
Patched: ``BaseEventLoop.create_task`` (every task a
loop makes; the task itself stays the loop's real ``asyncio.Task``),
``threading.Thread.start`` and
``concurrent.futures.ThreadPoolExecutor.submit``. A pool's own worker threads
get no id: the work submitted to them does, in the order it was submitted, so
which worker runs it, and when, never matters.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import concurrent.futures
import contextvars
import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

from replay._capture import patch as _patch
from replay._capture import tasks as _tasks

_create_task = asyncio.base_events.BaseEventLoop.create_task
_thread_start = threading.Thread.start
_submit = concurrent.futures.ThreadPoolExecutor.submit

_POOL_WORKERS = ("concurrent.futures.thread", "anyio._backends._asyncio", "anyio.to_thread")
"""Modules whose threads are pool workers: the work items carry the ids."""


def create_task(self: asyncio.base_events.BaseEventLoop, coro: Any, **kwargs: Any) -> Any:
    """``BaseEventLoop.create_task`` (behind ``asyncio.create_task``, ``ensure_future``,
    ``gather``, ``TaskGroup``): the new task runs in a copy of the context that
    holds its own logical task id. The task is the loop's usual ``asyncio.Task``."""
    context: contextvars.Context | None = kwargs.get("context")
    parent = context.get(_tasks.CURRENT) if context is not None else _tasks.state()
    if parent is not None and parent.session.active:
        try:
            running: Any = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        root = running is not self
        site = "loop" if root else _tasks.creation_site(sys._getframe(1))
        ctx = context.copy() if context is not None else contextvars.copy_context()
        ctx.run(_tasks.CURRENT.set, parent.child("", site))
        kwargs["context"] = ctx
    return _create_task(self, coro, **kwargs)


def thread_start(self: threading.Thread) -> None:
    """``Thread.start``: a thread started in the run becomes a child logical task."""
    parent = _tasks.state()
    if parent is not None and parent.session.active:
        target = getattr(self, "_target", None)
        owner = getattr(target, "__module__", None) or type(self).__module__
        if owner not in _POOL_WORKERS:
            site = _tasks.creation_site(sys._getframe(1))
            # A daemon thread a library started for itself (a telemetry exporter, a
            # logging worker) is bookkeeping, not the agent's work.
            state = parent.child("t", site, background="~" in site and self.daemon)
            run = self.run

            seen = _tasks.CURRENT.get()  # what a context copied here will name

            def run_in_task() -> None:
                _tasks.run_as(seen, state, run)

            self.run = run_in_task  # type: ignore[method-assign]
    _thread_start(self)


def submit(self: concurrent.futures.ThreadPoolExecutor, fn: Callable[..., Any], /,
           *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
    """``ThreadPoolExecutor.submit``: each work item is a child logical task."""
    parent = _tasks.state()
    if parent is not None and parent.session.active:
        child = parent.child("t", _tasks.creation_site(sys._getframe(1)))
        seen = _tasks.CURRENT.get()  # what a context copied here will name
        fn = functools.partial(contextvars.copy_context().run, _tasks.run_as, seen, child, fn)
    return _submit(self, fn, *args, **kwargs)


def patches() -> _patch.PatchList:
    """What this module patches (installed and removed with every other patch)."""
    return [
        (asyncio.base_events.BaseEventLoop, "create_task", create_task),
        (threading.Thread, "start", thread_start),
        (concurrent.futures.ThreadPoolExecutor, "submit", submit),
    ]


_patch.register(patches)
