"""The clock and sleeps: wall-clock reads are inputs, monotonic counters are not.

Patched while a session is active:

* ``time.time``, ``time.time_ns``, and ``time.localtime/gmtime/ctime/asctime/
  strftime`` when they read the current time;
* ``datetime.datetime.now/utcnow/today`` and ``datetime.date.today``: the
  methods of the *real* classes are replaced in their type dictionaries
  (:mod:`replay._capture.typeslots`), the classes themselves never are, so
  ``type(x) is datetime.datetime``, subclassing with any metaclass, pickling,
  ``copy`` and C extensions' ``isinstance`` checks all see the real types;
* ``time.sleep``, ``asyncio.sleep`` and anyio's asyncio backend sleep return at
  once while the running task is answered from the recording (recorded for
  display, never matched).

Monotonic and performance counters are never touched, so the asyncio loop,
httpx timeouts and logging keep working.
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
import datetime as _dt
import sys
import time as _time_mod
from collections.abc import Callable
from typing import Any

from replay._capture import callsite as _callsite
from replay._capture import patch as _patch
from replay._capture import tasks as _tasks
from replay._capture.session import BUSY, Read, current

_time = _time_mod.time
_time_ns = _time_mod.time_ns
_sleep = _patch.real_sleep
_localtime = _time_mod.localtime
_gmtime = _time_mod.gmtime
_ctime = _time_mod.ctime
_asctime = _time_mod.asctime
_strftime = _time_mod.strftime
_asyncio_sleep = asyncio.sleep

_date = _dt.date
_datetime = _dt.datetime
_date_today: Any = vars(_date)["today"]  # classmethod descriptors of the real types
_datetime_now: Any = vars(_datetime)["now"]
_datetime_utcnow: Any = vars(_datetime)["utcnow"]

_outside = _tasks.get_current
"""The running code's logical task, None outside every run (read before ``current()``
on the hottest paths: a C call instead of a Python one)."""
_now_real = _datetime_now.__get__(None, _datetime)  # outside every run: no binding per call
_TIME = Read("clock", {"fn": "time.time"}, float)
_TIME_NS = Read("clock", {"fn": "time.time_ns"}, int)


def time() -> float:
    """``time.time`` under a session."""
    state = _outside()
    if state is None:  # the common case outside every run: one look, no call
        return _time()
    s = state.session
    if not s.active:
        return _time()
    return s.read(state, _TIME, _time)  # type: ignore[no-any-return]


def time_ns() -> int:
    """``time.time_ns`` under a session."""
    state = _outside()
    if state is None:
        return _time_ns()
    s = state.session
    if not s.active:
        return _time_ns()
    return s.read(state, _TIME_NS, _time_ns)  # type: ignore[no-any-return]


def _now_secs(secs: float | None) -> float | None:
    return time() if secs is None and current() is not None else secs


def localtime(secs: float | None = None) -> _time_mod.struct_time:
    """``time.localtime``: the current time comes from the clock channel."""
    return _localtime(_now_secs(secs))


def gmtime(secs: float | None = None) -> _time_mod.struct_time:
    """``time.gmtime``: the current time comes from the clock channel."""
    return _gmtime(_now_secs(secs))


def ctime(secs: float | None = None) -> str:
    """``time.ctime``: the current time comes from the clock channel."""
    return _ctime(_now_secs(secs))


def asctime(t: Any = None) -> str:
    """``time.asctime``: the current time comes from the clock channel."""
    if t is None and current() is not None:
        t = _localtime(time())
    return _asctime() if t is None else _asctime(t)


def strftime(fmt: str, t: Any = None) -> str:
    """``time.strftime``: the current time comes from the clock channel."""
    if t is None and current() is not None:
        t = _localtime(time())
    return _strftime(fmt) if t is None else _strftime(fmt, t)


# -- datetime ----------------------------------------------------------------------
def _dt_encode(dt: _dt.datetime) -> list[Any]:
    return [dt.isoformat(), dt.fold]


def _as(cls: type[Any], dt: _dt.datetime) -> Any:
    """``dt`` as an instance of ``cls`` (a subclass asks ``cls`` itself, like C does)."""
    if cls is _datetime:
        return dt
    return cls(dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, dt.microsecond,
               dt.tzinfo, fold=dt.fold)


def _dt_decoder(cls: type[Any], tz: Any) -> Callable[[Any], Any]:
    def decode(v: Any) -> Any:
        dt = _datetime.fromisoformat(v[0]).replace(fold=int(v[1]))
        return _as(cls, dt.replace(tzinfo=tz) if tz is not None else dt.replace(tzinfo=None))
    return decode


def _real(descriptor: Any, cls: type[Any]) -> Any:
    """The original C classmethod bound to ``cls``; run with nested reads passed through."""
    bound = descriptor.__get__(None, cls)

    def run(*args: Any) -> Any:
        token = BUSY.set(True)
        try:
            return bound(*args)
        finally:
            BUSY.reset(token)
    return run


def now(cls: type[Any], tz: Any = None) -> Any:
    """``datetime.datetime.now`` (and its subclasses'): reads the clock channel."""
    if _outside() is None:
        return _now_real(tz) if cls is _datetime else _datetime_now.__get__(None, cls)(tz)
    s = current()
    if s is None:
        return _now_real(tz) if cls is _datetime else _datetime_now.__get__(None, cls)(tz)
    return _now_in(s, cls, tz)


def _now_in(s: Any, cls: type[Any], tz: Any) -> Any:
    """:func:`now` in session ``s`` (its own function: the closure's cells would be made
    on every call of ``now``, outside every run too)."""
    live = _real(_datetime_now, cls)
    return s.call("clock", {"fn": "datetime.now", "tz": None if tz is None else str(tz)},
                  lambda: live(tz), encode=_dt_encode, decode=_dt_decoder(cls, tz))


def utcnow(cls: type[Any]) -> Any:
    """``datetime.datetime.utcnow``: reads the clock channel."""
    if _outside() is None:
        return _datetime_utcnow.__get__(None, cls)()
    s = current()
    if s is None:
        return _datetime_utcnow.__get__(None, cls)()
    live = _real(_datetime_utcnow, cls)
    return s.call("clock", {"fn": "datetime.utcnow"}, live, encode=_dt_encode,
                  decode=_dt_decoder(cls, None))


def today(cls: type[Any]) -> Any:
    """``date.today`` and ``datetime.today``: read the clock channel once.

    The C method reads ``time.time()`` itself; it runs with nested reads passed
    through, so the event is the ``today`` call, as the user wrote it.
    """
    if _outside() is None:
        return _date_today.__get__(None, cls)()
    s = current()
    if s is None:
        return _date_today.__get__(None, cls)()
    return _today_in(s, cls)


def _today_in(s: Any, cls: type[Any]) -> Any:
    """:func:`today` in session ``s`` (see :func:`_now_in`)."""
    live = _real(_date_today, cls)
    if issubclass(cls, _datetime):
        return s.call("clock", {"fn": "datetime.today"}, live, encode=_dt_encode,
                      decode=_dt_decoder(cls, None))
    return s.call("clock", {"fn": "date.today"}, live, encode=lambda d: d.isoformat(),
                  decode=lambda v: cls.fromisoformat(v))


# -- sleeps ------------------------------------------------------------------------
def _in_run() -> bool:
    return _tasks.state() is not None


def _really(s: Any, frame: Any) -> bool:
    """Whether a sleep asked for while the task is answered from the recording must
    still take its time: the standard library's own (logging, sockets), and a
    library's when its task expects nothing more from the recording (a worker
    polling a queue: skipped, it would spin). The user's sleeps, and a library's
    in a task still being answered (an SDK's retry back-off), return at once."""
    infra, _site, library = _callsite.find(frame)
    if infra:
        return True
    if library is None:
        return False
    state = _tasks.state()
    return state is None or not s.expects(state.id)


def sleep(secs: float) -> None:
    """``time.sleep``: returns at once on replay (see :func:`_really`); recorded for
    display."""
    s = current()
    if s is None or not secs > 0 or secs == float("inf") or not _in_run():
        return _sleep(secs)
    if s.serving():
        if _really(s, sys._getframe(1)):
            return _sleep(secs)
        if s.speed is not None:  # replay at a pace: the sleep takes its time / speed
            _sleep(secs / s.speed)
        return None
    pending = s.begin("sleep", {"fn": "time.sleep", "seconds": secs})
    _sleep(secs)
    if pending is not None:
        pending.finish(None)
    return None


async def async_sleep(delay: float, result: Any = None) -> Any:
    """``asyncio.sleep``: returns at once on replay (after yielding to the loop)."""
    s = current()
    if s is None or not delay > 0 or delay == float("inf") or not _in_run():
        return await _asyncio_sleep(delay, result)
    if s.serving():
        if _really(s, sys._getframe(1)):
            return await _asyncio_sleep(delay, result)
        await _asyncio_sleep(delay / s.speed if s.speed is not None else 0)
        return result
    pending = s.begin("sleep", {"fn": "asyncio.sleep", "seconds": delay})
    await _asyncio_sleep(delay)
    if pending is not None:
        pending.finish(None)
    return result


def patches() -> _patch.PatchList:
    """What this module patches (installed and removed with every other patch)."""
    out: _patch.PatchList = [
        (_time_mod, "time", time), (_time_mod, "time_ns", time_ns),
        (_time_mod, "sleep", sleep), (_time_mod, "localtime", localtime),
        (_time_mod, "gmtime", gmtime), (_time_mod, "ctime", ctime),
        (_time_mod, "asctime", asctime), (_time_mod, "strftime", strftime),
        (_datetime, "now", classmethod(now)), (_datetime, "utcnow", classmethod(utcnow)),
        (_date, "today", classmethod(today)),
        (asyncio, "sleep", async_sleep), (asyncio.tasks, "sleep", async_sleep),
    ]
    return out


def _anyio_patches(module: Any) -> _patch.PatchList:
    """anyio's asyncio backend sleep (patched at install when loaded, else at its import)."""
    backend_cls = getattr(module, "AsyncIOBackend", None)
    if backend_cls is None or "sleep" not in vars(backend_cls):
        return []
    return [(backend_cls, "sleep", classmethod(lambda cls, delay: async_sleep(delay)))]


_patch.register(patches)
_patch.register_module("anyio._backends._asyncio", _anyio_patches)
