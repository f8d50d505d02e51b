"""Logical task hooks: every asyncio task, thread and executor work item of a run
gets a stable id (see :mod:`replay._capture.tasks`) when it is made.

Patched while any session is open; a task, thread or work item belongs to the
run of the code that made it (none when that code is outside every run).
Patched: ``BaseEventLoop.create_task`` (every task a
loop makes; the task itself stays the loop's real ``asyncio.Task``), uvloop's
``Loop.create_task`` (its loop is not a ``BaseEventLoop``: uvicorn runs on it
when uvloop is installed, as ``uvicorn[standard]`` does), ``threading.Thread.start`` and
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
import types
from collections.abc import Callable
from typing import Any

from replay._capture import patch as _patch
from replay._capture import tasks as _tasks

_create_task = asyncio.base_events.BaseEventLoop.create_task
_thread_start = threading.Thread.start
_submit = concurrent.futures.ThreadPoolExecutor.submit

_POOL_WORKERS = ("concurrent.futures.thread", "anyio._backends._asyncio", "anyio.to_thread")
"""Modules whose threads are pool workers: the work items carry the ids."""


def _task_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    """A loop's ``create_task`` (``original``) that gives each task of a run its id."""

    def create_task(self: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        """``create_task`` (behind ``asyncio.create_task``, ``ensure_future``,
        ``gather``, ``TaskGroup``): the new task runs in a copy of the context that
        holds its own logical task id. The task is the loop's usual one."""
        context: contextvars.Context | None = kwargs.get("context")
        parent = context.get(_tasks.CURRENT) if context is not None else _tasks.state()
        if parent is not None and parent.session.active:
            try:
                running: Any = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            root = running is not self
            site = (_tasks.loop_site if root else _tasks.creation_site)(sys._getframe(1))
            ctx = context.copy() if context is not None else contextvars.copy_context()
            ctx.run(_tasks.CURRENT.set, parent.child("", site))
            kwargs["context"] = ctx
        return original(self, coro, **kwargs)
    create_task.__wrapped__ = original  # type: ignore[attr-defined]
    return create_task


create_task = _task_hook(_create_task)
_UVLOOP_HOOKS: dict[int, tuple[object, Callable[..., Any]]] = {}


def _uvloop_patches(module: types.ModuleType) -> _patch.PatchList:
    """uvloop's ``Loop`` (a Python subclass of its compiled loop) gets the hook on
    itself; the compiled base's own ``create_task`` is what the hook calls. A loop
    a run records on and the plain asyncio loop it is replayed on (or the other
    way round) then name their tasks alike."""
    loop = getattr(module, "Loop", None)
    if not isinstance(loop, type):
        return []
    base = next((vars(c)["create_task"] for c in loop.__mro__[1:]
                 if "create_task" in vars(c)), None)
    if base is None or not callable(base):
        return []
    cached = _UVLOOP_HOOKS.get(id(loop))
    if cached is None or cached[0] is not base:
        cached = _UVLOOP_HOOKS[id(loop)] = (base, _task_hook(base))
    return [(loop, "create_task", cached[1])]


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
_patch.register_module("uvloop", _uvloop_patches)
