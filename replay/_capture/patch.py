"""All patching, installed and removed as one unit.

The capture points register what they patch (``register(provider)``, a
function returning ``(owner, attribute, replacement)`` triples); ``install``
puts every replacement in place under one lock and ``uninstall`` puts every
original back. The capture points:

* :mod:`~replay._capture.clock`: wall clock, ``datetime`` ``now/utcnow/today``,
  sleeps;
* :mod:`~replay._capture.randomness`: ``random``, ``os.urandom``, ``uuid``;
* :mod:`~replay._capture.thirdparty`: numpy's legacy global generator, ``uuid_utils``;
* :mod:`~replay._capture.taskhooks`: logical task ids for tasks, threads, work items;
* :mod:`~replay._capture.http` and :mod:`~replay._capture.mcp`: HTTP and MCP clients.

Only functions and methods are replaced, never a class or a module: a method
of a built-in type that refuses ``setattr`` (``datetime.datetime.now``) is
replaced in the type's own dictionary, and the type's method cache is reset,
so ``type(x) is datetime.datetime`` and subclassing keep holding. A module
function is also replaced where other modules bound it by name (``from time
import time``, ``from uuid_utils.compat import uuid7``): every loaded module is
scanned once for such bindings (later installs scan only modules new since).
A capture point for a module that may be imported during the run
(``register_module``) is applied when that import finishes. Every replacement
checks for the running code's session first and calls the original when there
is none, so a reference kept past the session, or a call made outside every
run while other runs record, is harmless. The patches stay in place while any
session is open (``install`` and ``uninstall`` count their holders).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import importlib.abc
import importlib.machinery
import sys
import threading
import time as _time_mod
import types
from collections.abc import Callable, Sequence
from typing import Any

from replay._capture import modelfactories as _models
from replay._capture import rebind as _rebind

PatchList = list[tuple[object, str, object]]

real_sleep = _time_mod.sleep
"""``time.sleep`` itself, for agent-replay's own waits (paced replay)."""
real_asyncio_sleep = asyncio.sleep
"""``asyncio.sleep`` itself."""
# The names tests and the HTTP layer used before the capture points were split.
_sleep = real_sleep
_asyncio_sleep = real_asyncio_sleep

_LOCK = threading.RLock()
_saved: list[tuple[object, str, object, bool]] = []
_PROVIDERS: list[Callable[[], PatchList]] = []
_MODULE_PROVIDERS: dict[str, list[Callable[[types.ModuleType], PatchList]]] = {}
_scanned: set[str] = set()
"""Names of the modules already scanned for bindings of patched functions."""
_scanned_for: frozenset[int] = frozenset()
_hits: list[tuple[types.ModuleType, str]] = []
"""Every (module, name) found bound to a patched function."""
_classes: list[type] = []
"""Every module-level class found with a generated ``__init__`` (see :mod:`.rebind`)."""
_rebound: _rebind.Undo = []
_dataclasses: list[type] = []
"""Every module-level pydantic dataclass found (see :mod:`.modelfactories`)."""
_remodelled: _models.Undo = []


def register(provider: Callable[[], PatchList]) -> None:
    """Add a capture point's patches; ``provider`` is called at every install."""
    with _LOCK:
        if provider not in _PROVIDERS:
            _PROVIDERS.append(provider)


def _type_dict(cls: type) -> dict[str, Any]:
    """The dictionary behind ``cls.__dict__`` (a read-only proxy for every type)."""
    referents = gc.get_referents(vars(cls))
    if len(referents) != 1 or not isinstance(referents[0], dict):  # pragma: no cover
        raise TypeError(f"cannot reach the dictionary of {cls!r}")
    d: dict[str, Any] = referents[0]
    return d


def _set(owner: object, attr: str, value: object) -> None:
    try:
        setattr(owner, attr, value)
    except TypeError:
        if not isinstance(owner, type):
            raise
        _type_dict(owner)[attr] = value
        ctypes.pythonapi.PyType_Modified(ctypes.py_object(owner))


def _delete(owner: object, attr: str) -> None:
    try:
        delattr(owner, attr)
    except AttributeError:
        pass
    except TypeError:
        if isinstance(owner, type):
            _type_dict(owner).pop(attr, None)
            ctypes.pythonapi.PyType_Modified(ctypes.py_object(owner))


def register_module(name: str, provider: Callable[[types.ModuleType], PatchList]) -> None:
    """Add patches for module ``name``: applied at install when it is loaded, else as
    soon as the run imports it."""
    with _LOCK:
        providers = _MODULE_PROVIDERS.setdefault(name, [])
        if provider not in providers:
            providers.append(provider)


def extend(make: Callable[[], PatchList]) -> bool:
    """Put ``make()``'s patches in place beside the installed ones; they come out with
    the others. For a capture point that needs them only once a run uses its
    library (vcrpy's urllib3 stubs, built at a run's first request through
    urllib3). False, and nothing applied, when the patches are not installed.
    ``make`` runs under the lock, so it must not import (a finished import applies
    its module's patches under the same lock)."""
    with _LOCK:
        if not _saved:
            return False
        _apply(make())
        return True


def _apply(patches: PatchList) -> None:
    for owner, attr, new in patches:
        # Only what the owner itself holds is saved and restored: an attribute it
        # inherits (a method of the shared generator's class) is deleted again on
        # uninstall, not frozen into an instance attribute.
        own = vars(owner)
        had = attr in own
        _saved.append((owner, attr, own[attr] if had else None, had))
        _set(owner, attr, new)


def _by_name(patches: PatchList) -> PatchList:
    """The same replacements where other modules bound a patched module function."""
    global _scanned_for
    originals: dict[int, object] = {}
    for owner, attr, new in patches:
        if isinstance(owner, types.ModuleType):
            old = vars(owner).get(attr)
            if callable(old) and not isinstance(old, type):
                originals[id(old)] = new
    ids = frozenset(originals)
    if ids != _scanned_for:  # other functions patched than last time: scan everything again
        _scanned.clear()
        _hits.clear()
        _classes.clear()
        _dataclasses.clear()
        _scanned_for = ids
    modules = sys.modules
    for modname in modules.keys() - _scanned:
        _scanned.add(modname)
        mod = modules.get(modname)
        if mod is None or modname == "replay" or modname.startswith("replay."):
            continue
        try:
            items = list(vars(mod).items())
        except TypeError:
            continue
        names = [k for k, v in items if id(v) in ids]
        _hits.extend((mod, k) for k in names)
        _classes.extend(_rebind.generated_classes(v for _, v in items))
        _dataclasses.extend(_models.dataclasses_of(v for _, v in items))
    direct = {(id(owner), attr) for owner, attr, _ in patches}
    out: PatchList = []
    for mod, k in _hits:
        value = vars(mod).get(k)
        if id(value) in ids and (id(mod), k) not in direct:
            out.append((mod, k, originals[id(value)]))
    return out


_IMPORTING: list[str] = []


def importing(name: str) -> bool:
    """Whether module ``name``'s patches are being applied because the run imported it
    (not because the module was already loaded when the patches were installed)."""
    return name in _IMPORTING


class _ImportWatcher(importlib.abc.MetaPathFinder):
    """Applies a module's registered patches when the run imports it."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _MODULE_PROVIDERS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec: importlib.machinery.ModuleSpec | None = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader: Any = spec.loader
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return spec

        def exec_and_patch(module: types.ModuleType) -> None:
            exec_module(module)
            with _LOCK:
                if _saved:
                    _IMPORTING.append(fullname)
                    try:
                        for provider in _MODULE_PROVIDERS.get(fullname, ()):
                            _apply(provider(module))
                    finally:
                        _IMPORTING.pop()
        loader.exec_module = exec_and_patch
        return spec


_WATCHER = _ImportWatcher()


_users = 0
"""Open sessions (and other holders) that asked for the patches: the first
:func:`install` puts them in place, the last :func:`uninstall` takes them out."""


def install() -> None:
    """Put every patch in place for one more holder (the first one installs them)."""
    global _users
    with _LOCK:
        _users += 1
        if _saved:
            return
        try:
            _install()
        except BaseException:
            _users -= 1
            raise


def _install() -> None:
    patches: PatchList = []
    for provider in _PROVIDERS:
        patches.extend(provider())
    for name, providers in _MODULE_PROVIDERS.items():
        module = sys.modules.get(name)
        if module is not None:
            for module_provider in providers:
                patches.extend(module_provider(module))
    patches.extend(_by_name(patches))
    _apply(patches)
    originals = _originals(patches)
    in_types = frozenset((id(owner), attr) for owner, attr, _ in patches if isinstance(owner, type))
    _rebound.extend(_rebind.rebind(_classes, originals, in_types))
    _remodelled.extend(_models.rebind(_models.candidates(_dataclasses), originals, in_types))
    sys.meta_path.insert(0, _WATCHER)


def _originals(patches: PatchList) -> dict[int, object]:
    """By the id of each replaced module function (held in ``_saved``): its replacement."""
    new_by_key = {(id(owner), attr): new for owner, attr, new in patches}
    out: dict[int, object] = {}
    for owner, attr, old, had in _saved:
        if had and isinstance(owner, types.ModuleType) and callable(old):
            new = new_by_key.get((id(owner), attr))
            if new is not None:
                out[id(old)] = new
    return out


def uninstall() -> None:
    """One holder is done with the patches; the last one puts every original back."""
    global _users
    with _LOCK:
        _users = max(0, _users - 1)
        if _users:
            return
        if _WATCHER in sys.meta_path:
            sys.meta_path.remove(_WATCHER)
        _models.restore(_remodelled)
        _rebind.restore(_rebound)
        while _saved:
            owner, attr, old, had = _saved.pop()
            if had:
                _set(owner, attr, old)
            else:
                _delete(owner, attr)


def installed() -> bool:
    """Whether the patches are in place."""
    with _LOCK:
        return bool(_saved)
