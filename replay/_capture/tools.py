"""``@replay.tool`` and ``replay.capture``: recorded calls to the agent's own code.

A tool's arguments are bound to its parameter names (so a divergence names
the changed field), its result or exception recorded; on replay the tool does
not run: the recorded result is returned, or the recorded exception raised.
Events made while the tool body runs during recording are kept as its
children (shown in the timeline, never expected on replay).

Results must be JSON-like, or a dataclass / pydantic model named by the
function's return annotation (rebuilt from the annotation, never from data),
or the caller supplies ``dump=`` / ``load=``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import time
import typing
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

from replay._capture import toolpath as _toolpath
from replay._capture import values as _values
from replay._capture.session import BUSY, PARENT, Pending, current
from replay._capture.tasks import get_current, work_items
from replay._cassette.events import Value

_busy, _parent, _getframe, _perf_ns = BUSY.get, PARENT.get, sys._getframe, time.perf_counter_ns

P = ParamSpec("P")
R = TypeVar("R")

_TOOLS: dict[str, ToolInfo] = {}


@dataclasses.dataclass(frozen=True, slots=True)
class ToolInfo:
    """What is known of a decorated tool."""

    name: str
    """The channel is ``tool:NAME`` (``capture:NAME`` for captures)."""
    channel: str
    """Full channel name."""
    safe: bool
    """True when the tool may be re-run live (drift probes): read-only."""
    func: Callable[..., Any]
    """The undecorated function."""


def registered_tools() -> dict[str, ToolInfo]:
    """Every tool and capture decorated so far, by channel."""
    return dict(_TOOLS)


def _codec(func: Callable[..., Any], dump: Callable[[Any], Value] | None,
           load: Callable[[Value], Any] | None, where: str
           ) -> tuple[Callable[[Any], Value], Callable[[Value], Any], Callable[[Any], Value],
                      Callable[[Any], bool] | None]:
    """(dump, load, quick dump, leafy) of a tool's results: to and from the stored value;
    the quick one, for a value written at once and never kept, need not copy it;
    for the default codec, whose quick dump gives the value back as it is, leafy
    checks it as quick does and says whether it is a leaf or a flat map
    (:func:`~replay._capture.values.leaf_checker`), None for the others."""
    if dump is not None and load is not None:
        return dump, load, dump, None
    try:
        ret = typing.get_type_hints(func).get("return")
    except Exception:
        ret = None
    if isinstance(ret, type) and dataclasses.is_dataclass(ret):
        cls: Any = ret
        def asdict(v: Any) -> Value:
            return _values.strict(dataclasses.asdict(v), where)
        return asdict, (lambda v: cls(**v)), asdict, None
    if isinstance(ret, type) and hasattr(ret, "model_validate") and hasattr(ret, "model_dump"):
        model: Any = ret
        def dumped(v: Any) -> Value:
            return _values.strict(v.model_dump(mode="json"), where)
        return dumped, model.model_validate, dumped, None
    if dump is not None:
        return dump, (load or (lambda v: v)), dump, None
    return ((lambda v: _values.strict(v, where)), (load or (lambda v: v)),
            _values.checker(where), _values.leaf_checker(where))


_SAME = frozenset({str, int, bool, bytes, type(None)})  # what canonical() gives back as it is
_EXACT = _values.EXACT  # the leaves strict() takes as they are


def _binder(func: Callable[..., Any]
            ) -> tuple[Callable[..., Value], tuple[str, ...], int, int]:
    """(bind, names, least, most): ``bind(*args, **kwargs)`` is the request's
    ``{"args": ...}``; a call with no keywords, from ``least`` to ``most`` positional
    arguments all of ``_SAME``'s types, binds to ``{"args": dict(zip(names, args))}``
    (``least > most`` when the signature has other kinds of parameter)."""
    try:
        sig: inspect.Signature | None = inspect.signature(func)
    except (TypeError, ValueError):
        sig = None
    plain = sig is not None and all(
        p.kind is p.POSITIONAL_OR_KEYWORD for p in sig.parameters.values())
    names = tuple(sig.parameters) if sig is not None else ()
    known = frozenset(names)
    required = frozenset(n for n, p in sig.parameters.items()
                         if p.default is p.empty) if sig is not None else frozenset()
    least, most = len(required), len(names)  # positional ones: the required come first
    canonical = _values.canonical

    def bind(*args: Any, **kwargs: Any) -> Value:
        if plain and not kwargs and least <= len(args) <= most:  # the common call
            return {"args": dict(zip(names, map(canonical, args), strict=False))}
        if plain and len(args) <= len(names):
            # What sig.bind(...).arguments holds (the given arguments in parameter
            # order, defaults left out) without inspect's general machinery.
            given = dict(zip(names, args, strict=False))
            if not kwargs or (kwargs.keys().isdisjoint(given)
                              and kwargs.keys() <= known):
                if kwargs:
                    given.update(kwargs)
                    given = {n: given[n] for n in names if n in given}
                if required.issubset(given):
                    return {"args": _values.canonical(given)}
        if sig is not None:
            try:
                bound = sig.bind(*args, **kwargs)
                return {"args": _values.canonical(dict(bound.arguments))}
            except TypeError:
                pass
        return {"args": {"*": _values.canonical(list(args)),
                         "**": _values.canonical(kwargs)}}
    return bind, names, (least if plain else 1), (most if plain else 0)


def _wrap(func: Callable[..., Any], channel: str, safe: bool,
          dump: Callable[[Any], Value] | None, load: Callable[[Value], Any] | None
          ) -> Callable[..., Any]:
    bind, names, least, most = _binder(func)
    same = _SAME.issuperset
    first = names[0] if names else ""  # the one argument's name, when there is one
    encode, decode, quick, leafy = _codec(func, dump, load, f"the result of {channel}")
    meta: dict[str, Value] = {"safe": safe}
    marker = object()  # this tool's part of the call-site cache keys (toolpath.entry)

    def served(pending: Pending) -> Any:
        recorded = pending.recorded
        assert recorded is not None
        if recorded.error is not None:
            from replay._capture.exc import rebuild
            raise rebuild(recorded.error, recorded.seq)
        return decode(recorded.response)

    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            state = get_current()
            if state is None:
                return await func(*args, **kwargs)
            s = state.session
            writer = s._values
            if not (writer is None or work_items[0] or state.background or s.on_begin
                    or s.listeners or _busy() or not s.active):
                # the short path, as in sync_wrapper below
                frame = _getframe(1)  # the coroutine that awaits this one
                code = frame.f_code
                key = (id(code), frame.f_lasti, marker)
                hit = state.reads.get(key)
                if hit is None or hit[0] is not code:
                    hit = _toolpath.entry(state, writer, channel, meta, key, frame, names)
                shape = hit[1]
                if shape is not None:
                    if kwargs or not least <= len(args) <= most:
                        request, flat = bind(*args, **kwargs), False
                    elif len(args) == 1 and type(args[0]) in _SAME:  # as below, no map or zip
                        request, flat = {"args": {first: args[0]}}, True
                    elif same(map(type, args)):
                        request = {"args": dict(zip(names, args, strict=False))}  # as bind()
                        flat = True
                    else:
                        request, flat = bind(*args, **kwargs), False
                    seq = next(s._seq)  # atomic under the GIL (see Session.read)
                    parent = _parent()
                    t0 = s.t0
                    start = _perf_ns() - t0
                    token = PARENT.set(seq)
                    try:
                        result = await func(*args, **kwargs)
                    except Exception as exc:
                        _toolpath.fail(s, seq, channel, request, state.id, hit[2], start,
                                       parent, meta, exc)
                        raise
                    finally:
                        PARENT.reset(token)
                    duration = _perf_ns() - t0 - start
                    clear = False
                    if leafy is not None:  # the default codec: checked, not copied
                        response, known = result, shape.clear
                        t = type(result)
                        if flat and known is not None and (t in _EXACT or (  # keys: str
                                t is dict and known.issuperset(result)
                                and _EXACT.issuperset(map(type, result.values())))):
                            leaf = clear = True  # what leafy() says, and no key to redact
                        else:
                            leaf = leafy(result)
                    else:
                        response, leaf = quick(result), False
                    if not s.active or not writer.write_call(  # ended: emit leaves it out
                            shape, seq, start, duration, parent, request, response, flat, leaf,
                            clear):
                        _toolpath.write(s, seq, channel, request, response, start, duration,
                                        state.id, hit[2], parent, meta)
                    return result
            s = current()
            pending = s.begin(channel, bind(*args, **kwargs), meta=meta) if s else None
            if pending is None:
                return await func(*args, **kwargs)
            if pending.recorded is not None:
                return served(pending)
            token = PARENT.set(pending.seq)
            try:
                result = await func(*args, **kwargs)
            except Exception as exc:
                pending.fail(exc)
                raise
            finally:
                PARENT.reset(token)
            pending.finish(encode(result))
            return result
        wrapper: Callable[..., Any] = async_wrapper
    else:
        @functools.wraps(func)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            state = get_current()
            if state is None:
                return func(*args, **kwargs)
            s = state.session
            writer = s._values
            if not (writer is None or work_items[0] or state.background or s.on_begin
                    or s.listeners or _busy() or not s.active):
                # the short path (toolpath.py): what the long one below does, in fewer steps
                frame = _getframe(1)
                code = frame.f_code
                key = (id(code), frame.f_lasti, marker)
                hit = state.reads.get(key)
                if hit is None or hit[0] is not code:
                    hit = _toolpath.entry(state, writer, channel, meta, key, frame, names)
                shape = hit[1]
                if shape is not None:
                    if kwargs or not least <= len(args) <= most:
                        request, flat = bind(*args, **kwargs), False
                    elif len(args) == 1 and type(args[0]) in _SAME:  # as below, no map or zip
                        request, flat = {"args": {first: args[0]}}, True
                    elif same(map(type, args)):
                        request = {"args": dict(zip(names, args, strict=False))}  # as bind()
                        flat = True
                    else:
                        request, flat = bind(*args, **kwargs), False
                    seq = next(s._seq)  # atomic under the GIL (see Session.read)
                    parent = _parent()
                    t0 = s.t0
                    start = _perf_ns() - t0
                    token = PARENT.set(seq)
                    try:
                        result = func(*args, **kwargs)
                    except Exception as exc:
                        _toolpath.fail(s, seq, channel, request, state.id, hit[2], start,
                                       parent, meta, exc)
                        raise
                    finally:
                        PARENT.reset(token)
                    duration = _perf_ns() - t0 - start
                    clear = False
                    if leafy is not None:  # the default codec: checked, not copied
                        response, known = result, shape.clear
                        t = type(result)
                        if flat and known is not None and (t in _EXACT or (  # keys: str
                                t is dict and known.issuperset(result)
                                and _EXACT.issuperset(map(type, result.values())))):
                            leaf = clear = True  # what leafy() says, and no key to redact
                        else:
                            leaf = leafy(result)
                    else:
                        response, leaf = quick(result), False
                    if not s.active or not writer.write_call(  # (counted by the writer)
                            shape, seq, start, duration, parent, request, response, flat, leaf,
                            clear):
                        _toolpath.write(s, seq, channel, request, response, start, duration,
                                        state.id, hit[2], parent, meta)
                    return result
            s = current()
            pending = s.begin(channel, bind(*args, **kwargs), meta=meta) if s else None
            if pending is None:
                return func(*args, **kwargs)
            if pending.recorded is not None:
                return served(pending)
            token = PARENT.set(pending.seq)
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                pending.fail(exc)
                raise
            finally:
                PARENT.reset(token)
            pending.finish(encode(result))
            return result
        wrapper = sync_wrapper
    _TOOLS[channel] = ToolInfo(channel.split(":", 1)[1], channel, safe, func)
    wrapper.__agent_replay__ = _TOOLS[channel]  # type: ignore[attr-defined]
    return wrapper


@overload
def tool(func: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def tool(*, name: str | None = None, safe: bool = False,
         dump: Callable[[Any], Value] | None = None,
         load: Callable[[Value], Any] | None = None
         ) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def tool(func: Callable[P, R] | None = None, /, *, name: str | None = None,
         safe: bool = False, dump: Callable[[Any], Value] | None = None,
         load: Callable[[Value], Any] | None = None) -> Any:
    """Mark ``func`` as an agent tool: recorded, and served from the cassette on replay.

    ``safe=True`` says the tool only reads (re-running it has no side effect),
    which lets drift probes run it live. ``dump``/``load`` convert a result that
    is not JSON-like to and from a stored value.
    """
    def deco(f: Callable[P, R]) -> Callable[P, R]:
        return _wrap(f, f"tool:{name or f.__name__}", safe, dump, load)
    return deco(func) if func is not None else deco


def capture(func: Callable[P, R], /, *, name: str | None = None, safe: bool = False,
            dump: Callable[[Any], Value] | None = None,
            load: Callable[[Value], Any] | None = None) -> Callable[P, R]:
    """Record any other non-deterministic callable (a DB read, a file read).

    ``read = replay.capture(db.read)``; replay returns what it returned.
    """
    label = name or getattr(func, "__qualname__", None) or getattr(func, "__name__", "call")
    return _wrap(func, f"capture:{label}", safe, dump, load)
