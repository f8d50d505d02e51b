"""All patching of the standard library, installed and removed as one unit.

What is patched while a session is active:

* clock: ``time.time``, ``time.time_ns``, ``time.localtime/gmtime/ctime/
  asctime/strftime`` (when they read the current time), ``datetime.datetime``
  ``.now/.utcnow/.today`` and ``datetime.date.today`` (the classes are swapped
  for subclasses in the ``datetime`` module and in user modules that imported
  them by name). Monotonic and performance counters are never touched, so the
  asyncio loop, httpx timeouts and logging keep working.
* sleeps: ``time.sleep``, ``asyncio.sleep`` and anyio's asyncio backend sleep
  return at once while the running task is answered from the recording
  (recorded for display, never matched).
* randomness: the ``random`` module's shared generator (``random()``,
  ``getrandbits()``, ``randbytes()``: every other module function is built on
  them), seeding of new ``random.Random()`` instances, ``os.urandom`` and the
  ``random``/``secrets`` system generator, ``uuid.uuid1/uuid4``.
* logical tasks: ``asyncio.tasks.Task`` (a subclass that gives each child task
  its id), ``threading.Thread.start`` and ``ThreadPoolExecutor.submit``.
* extra providers registered by other layers (the HTTP transports).

Every replacement checks for an active session first and calls the original
when there is none, so a reference kept past the session is harmless;
``uninstall`` puts every original object back.
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
import concurrent.futures
import contextvars
import datetime as _datetime_mod
import functools
import os
import random as _random_mod
import sys
import threading
import time as _time_mod
import uuid as _uuid_mod
from collections.abc import Callable
from typing import Any

from replay._capture import callsite as _callsite
from replay._capture import tasks as _tasks
from replay._capture.session import current

PatchList = list[tuple[object, str, object]]

_LOCK = threading.RLock()
_saved: list[tuple[object, str, object, bool]] = []
_modules_before: set[str] = set()
"""Names in sys.modules at install: only later ones (and user modules) can
have bound the fake datetime classes while the session ran."""
_PROVIDERS: list[Callable[[], PatchList]] = []

# -- originals, captured once -------------------------------------------------
_time = _time_mod.time
_time_ns = _time_mod.time_ns
_sleep = _time_mod.sleep
_localtime = _time_mod.localtime
_gmtime = _time_mod.gmtime
_ctime = _time_mod.ctime
_asctime = _time_mod.asctime
_strftime = _time_mod.strftime
_real_date = _datetime_mod.date
_real_datetime = _datetime_mod.datetime
_inst: Any = getattr(_random_mod, "_inst")  # noqa: B009 - private shared generator
_inst_random: Callable[[], float] = _inst.random
_inst_getrandbits: Callable[[int], int] = _inst.getrandbits
_inst_randbytes: Callable[[int], bytes] = _inst.randbytes
_Random_seed = _random_mod.Random.seed
_urandom = os.urandom
_uuid4 = _uuid_mod.uuid4
_uuid1 = _uuid_mod.uuid1
_asyncio_sleep = asyncio.sleep
_Task = asyncio.tasks.Task
_thread_start = threading.Thread.start
_submit = concurrent.futures.ThreadPoolExecutor.submit

_REQ_TIME = {"fn": "time.time"}
_REQ_TIME_NS = {"fn": "time.time_ns"}
_REQ_RANDOM = {"fn": "random"}


# -- clock ---------------------------------------------------------------------
def time() -> float:
    """``time.time`` under a session."""
    s = current()
    if s is None:
        return _time()
    return s.call("clock", _REQ_TIME, _time, decode=float)


def time_ns() -> int:
    """``time.time_ns`` under a session."""
    s = current()
    if s is None:
        return _time_ns()
    return s.call("clock", _REQ_TIME_NS, _time_ns, decode=int)


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


def _tz_key(tz: Any) -> str | None:
    return None if tz is None else str(tz)


def _dt_encode(dt: _datetime_mod.datetime) -> list[Any]:
    return [dt.isoformat(), dt.fold]


def _dt_decoder(tz: Any) -> Callable[[Any], _datetime_mod.datetime]:
    def decode(v: Any) -> _datetime_mod.datetime:
        dt = _real_datetime.fromisoformat(v[0]).replace(fold=int(v[1]))
        return dt.replace(tzinfo=tz) if tz is not None else dt.replace(tzinfo=None)
    return decode


class _DateMeta(type):
    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, _real_date)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, _real_date)


class _DatetimeMeta(_DateMeta):
    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, _real_datetime)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, _real_datetime)


class FakeDate(_real_date, metaclass=_DateMeta):
    """``datetime.date`` whose ``today()`` reads the clock channel."""

    __slots__ = ()

    @classmethod
    def today(cls) -> _datetime_mod.date:  # type: ignore[override]
        s = current()
        if s is None:
            return _real_date.today()
        return s.call("clock", {"fn": "date.today"}, _real_date.today,
                      encode=lambda d: d.isoformat(), decode=_real_date.fromisoformat)


class FakeDatetime(_real_datetime, FakeDate, metaclass=_DatetimeMeta):
    """``datetime.datetime`` whose ``now/utcnow/today`` read the clock channel."""

    __slots__ = ()

    @classmethod
    def now(cls, tz: Any = None) -> _datetime_mod.datetime:  # type: ignore[override]
        s = current()
        if s is None:
            return _real_datetime.now(tz)
        return s.call("clock", {"fn": "datetime.now", "tz": _tz_key(tz)},
                      lambda: _real_datetime.now(tz), encode=_dt_encode,
                      decode=_dt_decoder(tz))

    @classmethod
    def utcnow(cls) -> _datetime_mod.datetime:  # type: ignore[override]
        s = current()
        if s is None:
            return _real_datetime.utcnow()
        return s.call("clock", {"fn": "datetime.utcnow"}, _real_datetime.utcnow,
                      encode=_dt_encode, decode=_dt_decoder(None))

    @classmethod
    def today(cls) -> _datetime_mod.datetime:  # type: ignore[override]
        s = current()
        if s is None:
            return _real_datetime.today()
        return s.call("clock", {"fn": "datetime.today"}, _real_datetime.today,
                      encode=_dt_encode, decode=_dt_decoder(None))


for _cls, _name in ((FakeDate, "date"), (FakeDatetime, "datetime")):
    _cls.__name__ = _cls.__qualname__ = _name
    _cls.__module__ = "datetime"


# -- sleeps --------------------------------------------------------------------
def _in_run() -> bool:
    return _tasks.CURRENT.get() is not None


def sleep(secs: float) -> None:
    """``time.sleep``: returns at once on replay; recorded for display."""
    s = current()
    if s is None or not secs > 0 or secs == float("inf") or not _in_run():
        return _sleep(secs)
    if s.serving():
        if _callsite.find(sys._getframe(1))[0]:
            return _sleep(secs)
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
        await _asyncio_sleep(0)
        return result
    pending = s.begin("sleep", {"fn": "asyncio.sleep", "seconds": delay})
    await _asyncio_sleep(delay)
    if pending is not None:
        pending.finish(None)
    return result


# -- randomness ----------------------------------------------------------------
def random() -> float:
    """The shared generator's ``random()``."""
    s = current()
    if s is None:
        return _inst_random()
    return s.call("random", _REQ_RANDOM, _inst_random, decode=float)


def getrandbits(k: int) -> int:
    """The shared generator's ``getrandbits(k)``."""
    s = current()
    if s is None:
        return _inst_getrandbits(k)
    return s.call("random", {"fn": "getrandbits", "k": k}, lambda: _inst_getrandbits(k),
                  decode=int)


def randbytes(n: int) -> bytes:
    """The shared generator's ``randbytes(n)``."""
    s = current()
    if s is None:
        return _inst_randbytes(n)
    return s.call("random", {"fn": "randbytes", "n": n}, lambda: _inst_randbytes(n),
                  decode=bytes)


def _seed(self: _random_mod.Random, a: Any = None, version: int = 2) -> None:
    s = current()
    if a is None and s is not None:
        a = s.call("random", {"fn": "Random.seed"},
                   lambda: int.from_bytes(_urandom(8), "big"), decode=int)
    _Random_seed(self, a, version)


def urandom(n: int) -> bytes:
    """``os.urandom`` (also the ``random``/``secrets`` system generator)."""
    s = current()
    if s is None:
        return _urandom(n)
    return s.call("random", {"fn": "os.urandom", "n": n}, lambda: _urandom(n), decode=bytes)


def uuid4() -> _uuid_mod.UUID:
    """``uuid.uuid4``."""
    s = current()
    if s is None:
        return _uuid4()
    return s.call("uuid", {"fn": "uuid4"}, _uuid4, encode=str, decode=_uuid_mod.UUID)


def uuid1(node: int | None = None, clock_seq: int | None = None) -> _uuid_mod.UUID:
    """``uuid.uuid1``."""
    s = current()
    if s is None:
        return _uuid1(node, clock_seq)
    return s.call("uuid", {"fn": "uuid1", "node": node, "clock_seq": clock_seq},
                  lambda: _uuid1(node, clock_seq), encode=str, decode=_uuid_mod.UUID)


# -- logical tasks -------------------------------------------------------------
class Task(_Task):  # type: ignore[type-arg]
    """An asyncio Task that gives itself a logical task id at creation."""

    def __init__(self, coro: Any, *, loop: Any = None, name: Any = None,
                 context: contextvars.Context | None = None, **kwargs: Any) -> None:
        if current() is not None:
            parent = (context.get(_tasks.CURRENT) if context is not None
                      else _tasks.CURRENT.get())
            if parent is not None:
                try:
                    running: Any = asyncio.get_running_loop()
                except RuntimeError:
                    running = None
                root = running is None or (loop is not None and loop is not running)
                ctx = context.copy() if context is not None else contextvars.copy_context()
                ctx.run(_tasks.CURRENT.set, parent.child("", "loop" if root else None))
                context = ctx
        super().__init__(coro, loop=loop, name=name, context=context, **kwargs)


_POOL_WORKERS = ("concurrent.futures.thread", "anyio._backends._asyncio", "anyio.to_thread")


def thread_start(self: threading.Thread) -> None:
    """``Thread.start``: a user thread becomes a child logical task."""
    parent = _tasks.CURRENT.get()
    if current() is not None and parent is not None:
        target = getattr(self, "_target", None)
        owner = getattr(target, "__module__", None) or type(self).__module__
        if owner not in _POOL_WORKERS:
            state = parent.child("t")
            run = self.run

            def run_in_task() -> None:
                _tasks.CURRENT.set(state)
                run()

            self.run = run_in_task  # type: ignore[method-assign]
    _thread_start(self)


def submit(self: concurrent.futures.ThreadPoolExecutor, fn: Callable[..., Any], /,
           *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
    """``ThreadPoolExecutor.submit``: each work item is a child logical task."""
    parent = _tasks.CURRENT.get()
    if current() is not None and parent is not None:
        ctx = contextvars.copy_context()
        ctx.run(_tasks.CURRENT.set, parent.child("t"))
        fn = functools.partial(ctx.run, fn)
    return _submit(self, fn, *args, **kwargs)


# -- install / uninstall -------------------------------------------------------
def register(provider: Callable[[], PatchList]) -> None:
    """Add patches from another layer (HTTP); called at install time."""
    with _LOCK:
        if provider not in _PROVIDERS:
            _PROVIDERS.append(provider)


_USER_FILES: dict[str, bool] = {}


def _is_user_file(path: str) -> bool:
    """Whether a module file is the user's (cached: every session start asks again)."""
    user = _USER_FILES.get(path)
    if user is None:
        user = _USER_FILES[path] = _callsite._classify_file(path) == _callsite.USER
    return user


def _targets() -> PatchList:
    patches: PatchList = [
        (_time_mod, "time", time), (_time_mod, "time_ns", time_ns),
        (_time_mod, "sleep", sleep), (_time_mod, "localtime", localtime),
        (_time_mod, "gmtime", gmtime), (_time_mod, "ctime", ctime),
        (_time_mod, "asctime", asctime), (_time_mod, "strftime", strftime),
        (_datetime_mod, "datetime", FakeDatetime), (_datetime_mod, "date", FakeDate),
        (_random_mod, "random", random), (_random_mod, "getrandbits", getrandbits),
        (_random_mod, "randbytes", randbytes),
        (_inst, "random", random), (_inst, "getrandbits", getrandbits),
        (_inst, "randbytes", randbytes),
        (_random_mod.Random, "seed", _seed), (_random_mod, "_urandom", urandom),
        (os, "urandom", urandom),
        (_uuid_mod, "uuid4", uuid4), (_uuid_mod, "uuid1", uuid1),
        (asyncio, "sleep", async_sleep), (asyncio.tasks, "sleep", async_sleep),
        (asyncio.tasks, "Task", Task),
        (threading.Thread, "start", thread_start),
        (concurrent.futures.ThreadPoolExecutor, "submit", submit),
    ]
    anyio_backend = sys.modules.get("anyio._backends._asyncio")
    backend_cls = getattr(anyio_backend, "AsyncIOBackend", None)
    if backend_cls is not None and "sleep" in vars(backend_cls):
        patches.append((backend_cls, "sleep", classmethod(
            lambda cls, delay: async_sleep(delay))))
    for modname, mod in list(sys.modules.items()):
        if not _is_user_module(modname, mod):
            continue
        try:
            names = list(vars(mod).items())
        except TypeError:
            continue
        for name, value in names:
            if value is _real_datetime:
                patches.append((mod, name, FakeDatetime))
            elif value is _real_date:
                patches.append((mod, name, FakeDate))
    for provider in _PROVIDERS:
        patches.extend(provider())
    return patches


def install() -> None:
    """Put every patch in place (idempotent while installed)."""
    with _LOCK:
        if _saved:
            return
        _modules_before.clear()
        _modules_before.update(sys.modules)
        for owner, attr, new in _targets():
            # Only what the owner itself holds is saved and restored: an attribute
            # it inherits (a method of the shared generator's class) is deleted
            # again on uninstall, not frozen into an instance attribute.
            own = vars(owner)
            had = attr in own
            _saved.append((owner, attr, own[attr] if had else None, had))
            setattr(owner, attr, new)


def uninstall() -> None:
    """Put every original back, and unbind fakes that modules imported meanwhile."""
    with _LOCK:
        while _saved:
            owner, attr, old, had = _saved.pop()
            if had:
                setattr(owner, attr, old)
            else:
                try:
                    delattr(owner, attr)
                except AttributeError:
                    pass
        before = _modules_before
        for modname, mod in list(sys.modules.items()):
            if modname == "replay" or modname.startswith("replay."):
                continue
            if modname in before and not _is_user_module(modname, mod):
                continue  # a library loaded before the session never saw the fakes
            try:
                items = list(vars(mod).items())
            except TypeError:
                continue
            for name, value in items:
                if value is FakeDatetime:
                    setattr(mod, name, _real_datetime)
                elif value is FakeDate:
                    setattr(mod, name, _real_date)


def _module_file(mod: object) -> str | None:
    """A module's ``__file__`` read from its dict: ``getattr`` would run the
    ``__getattr__`` hooks of lazy modules, thousands of times per session."""
    try:
        f = vars(mod).get("__file__")
    except TypeError:
        return None
    return f if isinstance(f, str) else None


_USER_MODULES: dict[str, bool] = {}


def _is_user_module(name: str, mod: object) -> bool:
    """Whether module ``name`` is the user's own code (cached by name)."""
    user = _USER_MODULES.get(name)
    if user is None:
        f = _module_file(mod)
        user = _USER_MODULES[name] = f is not None and _is_user_file(f)
    return user


def installed() -> bool:
    """Whether the patches are in place."""
    return bool(_saved)
