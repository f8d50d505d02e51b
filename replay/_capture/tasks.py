"""Logical task ids: the same in every run, derived from where a task was made.

An id is the parent's id, then the creation site (file name and line of the
first user frame that created the task), then a counter per parent and site:
``main/agent.py:42#3`` is the fourth task that ``main`` created at line 42 of
agent.py; ``main/agent.py:50#t0`` the first thread or executor work item made
there. Object ids and thread idents never enter it, and a library that makes
its own tasks (a connection pool) cannot shift the ids of the user's tasks
because it counts under a different site.

A task made while its event loop is not running yet is the root of that loop
(``asyncio.run(main())``): the loop's run blocks its creator, so its line says
nothing, and a test that records in one place and replays in another must get
the same ids. Such tasks count under ``loop``: ``main/loop#0``.

The current task's :class:`TaskState` lives in a context variable: asyncio
copies it into child tasks (the hooks in ``_patch`` give each child its own),
threads and executor work items get theirs from the hooks too. A thread or
task with no state was not started by the recorded run and is not recorded.
"""

from __future__ import annotations

import os
import sys
import threading
from contextvars import ContextVar

from replay._capture import callsite as _callsite


class TaskState:
    """One logical task: its id and counters for the children it creates."""

    __slots__ = ("_counts", "_lock", "id")

    def __init__(self, task_id: str) -> None:
        self.id = task_id
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def child(self, kind: str, site: str | None = None) -> TaskState:
        """A new child state: ``kind`` is ``""`` for asyncio tasks, ``"t"`` for threads.

        ``site`` replaces the creation site (``"loop"`` for an event loop's root task).
        """
        if site is None:
            site = _creation_site()
        key = f"{site}#{kind}"
        with self._lock:
            n = self._counts.get(key, 0)
            self._counts[key] = n + 1
        return TaskState(f"{self.id}/{site}#{kind}{n}")


CURRENT: ContextVar[TaskState | None] = ContextVar("agent_replay_task", default=None)
"""The logical task of the running code; None outside a recorded run."""


def _creation_site() -> str:
    frame = _callsite.user_frame(sys._getframe(3))
    if frame is None:
        return "?"
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


def current_id() -> str | None:
    """The id of the running logical task, or None when it is not part of the run."""
    state = CURRENT.get()
    return None if state is None else state.id
