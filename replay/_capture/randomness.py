"""Randomness and uuids of the standard library.

Patched while a session is active: the ``random`` module's shared generator
(``random()``, ``getrandbits()``, ``randbytes()``: every other module function
is built on them), seeding of new ``random.Random()`` instances without a seed,
``os.urandom`` and the ``random`` module's own reference to it (so
``random.SystemRandom`` and ``secrets`` are captured too), ``uuid.uuid1`` and
``uuid.uuid4``. Third-party sources live in :mod:`replay._capture.thirdparty`.
"""

from __future__ import annotations

import os
import random as _random_mod
import sys
import types
import uuid as _uuid_mod
from collections.abc import Callable
from typing import Any, TypeVar

from replay._capture import callsite as _callsite
from replay._capture import patch as _patch
from replay._capture import tasks as _tasks
from replay._capture.session import Read, current

_inst: Any = getattr(_random_mod, "_inst")  # noqa: B009 - private shared generator
_inst_random: Callable[[], float] = _inst.random
_inst_getrandbits: Callable[[int], int] = _inst.getrandbits
_inst_randbytes: Callable[[int], bytes] = _inst.randbytes
_Random_seed = _random_mod.Random.seed
_Random_init = _random_mod.Random.__init__.__code__
_urandom = os.urandom
_uuid4 = _uuid_mod.uuid4
_uuid1 = _uuid_mod.uuid1

A = TypeVar("A")
T = TypeVar("T")
_RANDOM = Read("random", {"fn": "random"}, float)
_outside = _tasks.get_current


def _with_real_urandom(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (a function of the ``uuid`` module) as it is, but reading the original
    ``os.urandom``: outside every run the patched :func:`uuid4` runs the standard
    library's own code without going through the patched ``os.urandom`` a second
    time (the same bytes from the same source, one interceptor call fewer)."""
    ns = dict(vars(_uuid_mod))
    real_os = types.ModuleType("os")  # a module: ``os.urandom`` is a module attribute read,
    real_os.urandom = _urandom  # type: ignore[attr-defined]  # which the interpreter caches
    ns["os"] = real_os
    copy = types.FunctionType(fn.__code__, ns, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    return copy


_uuid4_outside = _with_real_urandom(_uuid4)


def _call(s: Any, channel: str, request: Any, fn: Callable[[A], T], arg: A,
          decode: Callable[[Any], T]) -> T:
    """``s.call(channel, request, lambda: fn(arg), decode=decode)``, made here: a closure
    in the interceptor would make a cell for ``arg`` on each of its calls, outside every
    run too."""
    return s.call(channel, request, lambda: fn(arg), decode=decode)  # type: ignore[no-any-return]


def random() -> float:
    """The shared generator's ``random()``."""
    state = _outside()
    if state is None:  # the common case outside every run: one look, no call
        return _inst_random()
    s = state.session
    if not s.active:
        return _inst_random()
    return s.read(state, _RANDOM, _inst_random)  # type: ignore[no-any-return]


def getrandbits(k: int) -> int:
    """The shared generator's ``getrandbits(k)``."""
    if _outside() is None:
        return _inst_getrandbits(k)
    s = current()
    if s is None:
        return _inst_getrandbits(k)
    return _call(s, "random", {"fn": "getrandbits", "k": k}, _inst_getrandbits, k, int)


def randbytes(n: int) -> bytes:
    """The shared generator's ``randbytes(n)``."""
    if _outside() is None:
        return _inst_randbytes(n)
    s = current()
    if s is None:
        return _inst_randbytes(n)
    return _call(s, "random", {"fn": "randbytes", "n": n}, _inst_randbytes, n, bytes)


def _stdlib_maker() -> str | None:
    """``path:line`` of the standard-library code that makes the ``Random()`` being
    seeded (``seed`` <- ``Random.__init__`` <- its maker), None when another maker
    (the user's code, a library) does."""
    frame = sys._getframe(2)
    if frame.f_back is None or frame.f_code is not _Random_init:
        return None
    maker = frame.f_back
    if _callsite.classify(maker.f_code) not in (_callsite.STDLIB, _callsite.INFRA):
        return None
    return f"{_callsite.portable(maker.f_code.co_filename)}:{maker.f_lineno}"


def seed(self: _random_mod.Random, a: Any = None, version: int = 2) -> None:
    """``Random.seed`` (and so ``Random()``): an unseeded generator's seed is recorded.

    A generator the standard library makes and keeps for the process (``tempfile``'s
    name sequence, made at the first temporary name and kept while the pid stays)
    is seeded once per process, so a run recorded first in its process asks for a
    seed that a later run (a replay in the same process) does not: its seed is a
    library read of the standard library's line, never a divergence.
    """
    s = current()
    if a is None and s is not None:
        a = s.call("random", {"fn": "Random.seed"},
                   lambda: int.from_bytes(_urandom(8), "big"), decode=int,
                   made_by=_stdlib_maker())
    _Random_seed(self, a, version)


def urandom(n: int) -> bytes:
    """``os.urandom`` (also the ``random``/``secrets`` system generator)."""
    if _outside() is None:
        return _urandom(n)
    s = current()
    if s is None:
        return _urandom(n)
    return _call(s, "random", {"fn": "os.urandom", "n": n}, _urandom, n, bytes)


def uuid4() -> _uuid_mod.UUID:
    """``uuid.uuid4``."""
    if _outside() is None:  # ``os.urandom`` patched by us, not replaced by the user's code
        return _uuid4_outside() if os.urandom is urandom else _uuid4()
    s = current()
    if s is None:
        return _uuid4()
    return s.call("uuid", {"fn": "uuid4"}, _uuid4, encode=str, decode=_uuid_mod.UUID)


def uuid1(node: int | None = None, clock_seq: int | None = None) -> _uuid_mod.UUID:
    """``uuid.uuid1``."""
    if _outside() is None:
        return _uuid1(node, clock_seq)
    s = current()
    if s is None:
        return _uuid1(node, clock_seq)
    return _uuid1_in(s, node, clock_seq)


def _uuid1_in(s: Any, node: int | None, clock_seq: int | None) -> _uuid_mod.UUID:
    """:func:`uuid1` in session ``s`` (see :func:`_call`)."""
    return s.call("uuid", {"fn": "uuid1", "node": node, "clock_seq": clock_seq},  # type: ignore[no-any-return]
                  lambda: _uuid1(node, clock_seq), encode=str, decode=_uuid_mod.UUID)


def patches() -> _patch.PatchList:
    """What this module patches (installed and removed with every other patch)."""
    return [
        (_random_mod, "random", random), (_random_mod, "getrandbits", getrandbits),
        (_random_mod, "randbytes", randbytes),
        (_inst, "random", random), (_inst, "getrandbits", getrandbits),
        (_inst, "randbytes", randbytes),
        (_random_mod.Random, "seed", seed), (_random_mod, "_urandom", urandom),
        (os, "urandom", urandom),
        (_uuid_mod, "uuid4", uuid4), (_uuid_mod, "uuid1", uuid1),
    ]


_patch.register(patches)
