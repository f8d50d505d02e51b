"""Randomness outside the standard library: ``uuid_utils`` and numpy.

* ``uuid_utils`` (a Rust extension; LangChain's message and run ids come from
  its ``uuid7``) and ``fastuuid`` (litellm's call ids): their random and
  time-based generators (:data:`UUID_FUNCTIONS`) go through the ``uuid``
  channel and come back as the type the function returns (``uuid_utils.UUID``,
  ``fastuuid.UUID``, ``uuid.UUID`` from ``uuid_utils.compat``, strings from the
  ``*_as_strings_bulk`` forms).
* numpy: the legacy global generator (``np.random.random()``, ``rand``,
  ``choice``... all share ``numpy.random.mtrand._rand``) is seeded by numpy
  from the operating system, out of Python's sight. Its whole state is
  recorded once per run, when the run imports numpy, and replay puts that
  state back: every later draw repeats.
  ``default_rng()`` without a seed takes its entropy from ``secrets``, which
  the ``random`` capture already covers.

Both are patched only when installed; a run that imports them later gets the
patches at that import.
"""

from __future__ import annotations

import sys
import types
import uuid as _uuid_mod
from collections.abc import Callable
from typing import Any

from replay._capture import patch as _patch
from replay._capture.session import current
from replay._cassette.events import Value

UUID_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "uuid_utils": ("uuid1", "uuid4", "uuid6", "uuid7"),
    "uuid_utils.compat": ("uuid1", "uuid4", "uuid6", "uuid7"),
    "fastuuid": ("uuid1", "uuid4", "uuid7", "uuid_v1mc", "uuid4_bulk", "uuid7_bulk",
                 "uuid4_as_strings_bulk", "uuid7_as_strings_bulk"),
}
"""The random or time-based generators of the uuid libraries, by module.
(``uuid3``/``uuid5``/``uuid8`` are deterministic and not patched.)"""


def _result_type(module_name: str, name: str) -> Callable[[str], Any]:
    """What a recorded id becomes again: the function's own result type."""
    if name.endswith("_as_strings_bulk"):
        return str
    if module_name.endswith(".compat"):
        return _uuid_mod.UUID
    cls: Callable[[str], Any] = getattr(sys.modules[module_name.split(".")[0]], "UUID")  # noqa: B009
    return cls


def _encode(value: Any) -> Any:
    return [str(v) for v in value] if isinstance(value, list) else str(value)


def _uuid_wrapper(module_name: str, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    fn = f"{module_name}.{name}"

    def decode(value: Any) -> Any:
        make = _result_type(module_name, name)
        return [make(v) for v in value] if isinstance(value, list) else make(value)

    def generate(*args: Any, **kwargs: Any) -> Any:
        s = current()
        if s is None:
            return original(*args, **kwargs)
        request: dict[str, Any] = {"fn": fn}
        if args:
            request["args"] = list(args)
        if kwargs:
            request["kwargs"] = dict(kwargs)
        return s.call("uuid", request, lambda: original(*args, **kwargs), encode=_encode,
                      decode=decode)

    generate.__name__ = generate.__qualname__ = name
    generate.__module__ = module_name
    generate.__doc__ = original.__doc__
    generate.__wrapped__ = original  # type: ignore[attr-defined]
    return generate


_WRAPPERS: dict[tuple[str, str], tuple[object, Callable[..., Any]]] = {}


def _uuid_patches(module: types.ModuleType) -> _patch.PatchList:
    out: _patch.PatchList = []
    for name in UUID_FUNCTIONS.get(module.__name__, ()):
        original = vars(module).get(name)
        if not callable(original):
            continue
        cached = _WRAPPERS.get((module.__name__, name))
        if cached is not None and cached[1] is original:
            continue  # our wrapper already (bound at an import during a run)
        if cached is None or cached[0] is not original:
            cached = (original, _uuid_wrapper(module.__name__, name, original))
            _WRAPPERS[(module.__name__, name)] = cached
        out.append((module, name, cached[1]))
    return out


# -- numpy ---------------------------------------------------------------------------
_NUMPY_STATE: Value = {"fn": "numpy.random.state"}


def _numpy_state(module: types.ModuleType) -> _patch.PatchList:
    """Record, or put back, the legacy global generator's state when the run imports
    numpy (as every ``replay record -- python ...`` run does); patches nothing.

    A run that starts with numpy already imported is not given this event: it
    would stand first in every in-process recording of a process that loaded
    numpy for other reasons. Such a program's legacy draws are not captured;
    ``replay doctor`` reports them (docs/frameworks.md, known limits).
    """
    if not _patch.importing(module.__name__):
        return []
    s = current()
    mtrand = getattr(module, "mtrand", None)
    rand: Any = getattr(mtrand, "_rand", None)
    if s is None or rand is None:
        return []

    def encode(state: Any) -> Any:
        name, keys, pos, has_gauss, gauss = state
        return [str(name), bytes(keys.tobytes()), int(pos), int(has_gauss), float(gauss)]

    def decode(value: Any) -> Any:
        name, keys, pos, has_gauss, gauss = value
        numpy: Any = __import__("numpy")
        state = (name, numpy.frombuffer(keys, dtype=numpy.uint32).copy(), pos, has_gauss, gauss)
        rand.set_state(state)
        return state

    s.once("random", _NUMPY_STATE, rand.get_state, encode=encode, decode=decode)
    return []


for _name in UUID_FUNCTIONS:
    _patch.register_module(_name, _uuid_patches)
_patch.register_module("numpy.random", _numpy_state)
