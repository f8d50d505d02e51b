"""The short path of a recorded tool call (``@replay.tool``, ``replay.capture``).

What ``Session.begin``, ``Pending.finish`` and ``CassetteWriter.write`` do for a
call, done in fewer steps for the common case: a record-only session writing a
journal (:attr:`CassetteWriter.writes_values`), the tool called by the user's
code, outside any work item or library's background task, no hook or listener
set, no nested-call guard up. The call site and the record's constant bytes
(:class:`~replay._cassette.writer.CallShape`) are cached per task, code object
and instruction, as ``Session.read`` caches a clock read's; the result is checked
without a copy (:func:`~replay._capture.values.checker`), the event written by
:meth:`CassetteWriter.write_call` (one redaction scan, no blob, one ``write()``)
before the call returns to user code. When ``write_call`` declines (a value that
redaction would change, or one large enough for blobs) the event is built and
written the long way, as ``Pending.finish`` would; a call that raises is recorded
by ``Pending.fail``. Anything else takes the long path from the start.

The records are those the long path writes for the same event, byte for byte
(tests/test_toolpath.py).
"""

from __future__ import annotations

from types import FrameType
from typing import Any

from replay._capture import callsite as _callsite
from replay._capture.pending import Pending, new_event
from replay._capture.tasks import TaskState
from replay._cassette.events import CallSite, Value
from replay._cassette.writer import CallShape, CassetteWriter

_KEPT = 10_000  # as Session.read: code made at run time (exec, lambdas in a loop)

Entry = tuple[Any, CallShape | None, CallSite | None]
"""A cache entry: (the caller's code, the record's shape or None for the long
path, the call site)."""


def entry(state: TaskState, writer: CassetteWriter, channel: str, meta: dict[str, Value],
          key: tuple[int, int, object], frame: FrameType, names: tuple[str, ...] = ()
          ) -> Entry:
    """The cache entry for calls of ``channel`` (a tool with parameters ``names``) from
    ``frame`` (the wrapper's caller) in ``state``'s task, made and kept in
    ``state.reads`` under ``key``."""
    site = shape = None
    if _callsite.classify(frame.f_code) == _callsite.USER:
        site = _callsite.site_of(frame)
        shape = writer.call_shape(channel, state.id, site, meta, names)
    reads = state.reads
    if len(reads) >= _KEPT:
        reads.clear()
    hit: Entry = (frame.f_code, shape, site)
    reads[key] = hit
    return hit


def write(session: Any, seq: int, channel: str, request: Value, response: Value, start: int,
          duration: int, task: str, site: CallSite | None, parent: int | None,
          meta: dict[str, Value]) -> None:
    """Write the event of a call that returned ``response`` as ``Pending.finish`` does
    (through the session: redaction and blobs), where ``write_call`` declined."""
    if not session.active:  # the call outlived its run (see Pending._complete)
        return
    with session._seq_lock:
        session._live += 1  # as begin() counts (write_call's events the writer counts)
    session.emit(new_event(seq, channel, request, response, None, start, duration, task, site,
                           (), parent, dict(meta)))


def fail(session: Any, seq: int, channel: str, request: Value, task: str,
         site: CallSite | None, start: int, parent: int | None, meta: dict[str, Value],
         exc: BaseException) -> None:
    """Record a call that raised ``exc``, as ``Pending.fail`` does."""
    with session._seq_lock:
        session._live += 1
    Pending(session, seq, channel, request, task, site, start, parent, None, meta).fail(exc)
