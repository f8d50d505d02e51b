"""Logical task ids: the same in every run, derived from where a task was made.

An id is the parent's id, then the creation site, then a counter per parent
and site: ``main/agent.py:42#3`` is the fourth task that ``main`` created at
line 42 of agent.py; ``main/agent.py:50#t0`` the first thread or executor work
item made there. Object ids and thread idents never enter it.

The creation site is the first user frame that created the task. When a
library made the task on the user's behalf (an HTTP client's connection task,
a framework's tool runner), the site also names the library frames between
the user's line and the creation, ``agent.py:42~_asyncio.py:812@3fa2``: the
innermost library frame and a digest of the whole library call chain. So a
task that a library makes in one run and not in another (a connection opened
live, never on replay) counts under its own site and cannot shift the
numbers of the user's tasks, nor of tasks the library makes elsewhere.

A task made while its event loop is not running yet is the root of that loop
(``asyncio.run(main())``): the loop's run blocks its creator, so its line says
nothing, and a test that records in one place and replays in another must get
the same ids. Such tasks count under ``loop``: ``main/loop#0``; the loops a
library runs count under ``loop`` and the library's chain, apart from the
user's (:func:`loop_site`).

The current task's :class:`TaskState` lives in a context variable: asyncio
copies it into child tasks (the hooks in ``taskhooks`` give each child its
own), threads and executor work items get theirs from the hooks too. A thread
or task with no state was not started by a recorded run and is not recorded.
Each state names the session its run belongs to, so the same context variable
says which of the process's concurrent runs the running code is part of, and
each run numbers its own tasks from its own ``main``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from contextvars import ContextVar
from types import FrameType
from typing import Any, TypeVar

from replay._capture import callsite as _callsite

T = TypeVar("T")


class TaskState:
    """One logical task of one run: its id, its run's session and counters for the
    children it creates."""

    __slots__ = ("_counts", "_lock", "background", "id", "reads", "session")

    def __init__(self, task_id: str, session: Any, *, background: bool = False) -> None:
        self.id = task_id
        self.session = session
        """The :class:`~replay._capture.session.Session` of the run the task belongs to."""
        self.background = background
        """A library's own background worker (a daemon thread a library started, and
        what it starts): its events are bookkeeping, replayed leniently."""
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.reads: dict[object, Any] = {}
        """The session's cache for this task's value reads, by call site and read
        (see ``Session.read``)."""

    def child(self, kind: str, site: str, *, background: bool = False) -> TaskState:
        """A new child state made at ``site`` (see :func:`creation_site`; :func:`loop_site`
        for an event loop's root task): ``kind`` is ``""`` for asyncio tasks, ``"t"``
        for threads and executor work items."""
        key = f"{site}#{kind}"
        with self._lock:
            n = self._counts.get(key, 0)
            self._counts[key] = n + 1
        return TaskState(f"{self.id}/{site}#{kind}{n}", self.session,
                         background=background or self.background)


CURRENT: ContextVar[TaskState | None] = ContextVar("agent_replay_task", default=None)
"""The logical task of the running code; None outside a recorded run. Read it
through :func:`state` (or ``get_current()`` where only its session matters)."""
get_current = CURRENT.get
"""``CURRENT.get``, bound once: the interceptors' first look on every call."""


class _Work(threading.local):
    """The work item a thread is running: (submitter's state, the item's own state)."""

    item: tuple[TaskState, TaskState] | None = None


_WORK = _Work()
_items = [0]
"""How many work items run now, in all threads (:func:`state` looks at the
thread's work item only when some do)."""
work_items = _items
"""``[n]``: how many work items run now; while 0, :func:`state` is ``CURRENT.get()``."""
_items_lock = threading.Lock()


def state() -> TaskState | None:
    """The logical task of the running code.

    Work handed to a thread often runs in a copy of the submitter's context
    (``executor.submit(copy_context().run, fn)``, as ``asyncio.to_thread``,
    LangChain's executors and litellm's logging do), which holds the
    submitter's task: inside the work item that task means the item itself,
    so its reads never share a queue with a thread running at the same time.
    """
    current = get_current()
    if _items[0] and current is not None:
        item = _WORK.item
        if item is not None and current is item[0]:
            return item[1]
    return current


def run_as(seen: TaskState | None, child: TaskState, fn: Callable[..., T], *args: Any,
           **kwargs: Any) -> T:
    """Run ``fn`` in this thread as work item ``child``; ``seen`` is what the
    submitter's context held (a copy of it, run inside the item, means the item)."""
    before = _WORK.item
    _WORK.item = (seen, child) if seen is not None else None
    token = CURRENT.set(child)
    with _items_lock:
        _items[0] += 1
    try:
        return fn(*args, **kwargs)
    finally:
        with _items_lock:
            _items[0] -= 1
        CURRENT.reset(token)
        _WORK.item = before


def creation_site(frame: FrameType | None) -> str:
    """Where a task is being made, walking out from ``frame`` (the creator's frame).

    The first user frame's ``file:line``; library frames met before it (the
    library that made the task) add ``~innermost@chain-digest``. Standard
    library frames (asyncio, threading, concurrent.futures dispatch user
    callables) and agent-replay's own never count.
    """
    chain: list[str] = []
    generated = ""  # code made from a string (``python -c``), when nothing else is
    while frame is not None:
        code = frame.f_code
        kind = _callsite.classify(code)
        if kind == _callsite.USER:
            site = f"{os.path.basename(code.co_filename)}:{frame.f_lineno}"
            break
        if kind == _callsite.LIB:
            chain.append(f"{_callsite.portable(code.co_filename)}:{frame.f_lineno}")
        if kind == _callsite.GEN and not generated:
            generated = f"{code.co_filename}:{frame.f_lineno}"
        if code in _callsite.BOUNDARIES:
            site = "" if chain else generated
            break
        frame = frame.f_back
    else:
        site = "" if chain else generated
    if not chain:
        return site or "?"
    digest = hashlib.blake2b("|".join(chain).encode(), digest_size=2).hexdigest()
    inner = chain[0]
    name, _, line = inner.rpartition(":")
    return f"{site}~{os.path.basename(name)}:{line}@{digest}"


def loop_site(frame: FrameType | None) -> str:
    """The site an event loop's root task counts under, ``frame`` being the frame
    that runs the loop: ``loop`` when the user's code runs it (``asyncio.run(main())``,
    wherever that line is), ``loop~innermost@chain-digest`` when a library does (as
    :func:`creation_site` names the library's chain).

    A library may run a loop of its own a varying number of times: litellm hands a
    service hook to ``asyncio.run`` (three root tasks with the runner's shutdown)
    or to ``run_until_complete`` (one) depending on whether the thread still has a
    current loop, which depends on what ran earlier in the process. Counted apart,
    those loops cannot shift the id of the user's next loop.
    """
    _, library, chain = creation_site(frame).partition("~")
    return f"loop~{chain}" if library else "loop"


def current_id() -> str | None:
    """The id of the running logical task, or None when it is not part of the run."""
    current = state()
    return None if current is None else current.id
