"""Patched functions that generated ``__init__`` methods captured before the patches.

``field(default_factory=datetime.now)`` on a dataclass made before a session began
holds the unpatched ``now``: the class's ``__init__``, compiled from a string,
keeps the factory in a closure cell (attrs keeps it in the generated method's own
globals), so replacing ``datetime.now`` in its type, or ``time.time`` in its
module, never reaches it and every such object would read the live clock, on
replay too. At install the classes of every loaded module whose ``__init__`` is
generated code are looked at, and each captured original that was patched is
swapped for what its owner now holds (``getattr(owner, name)``: the patched
function, bound as the original was); uninstall puts the originals back.

Only ``__init__`` methods generated from a string are touched: a user's own
``__init__`` that closes over ``time.time`` is left as written. A pydantic
model's factory, held by its compiled validator, is :mod:`.modelfactories`' job.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard

from replay._capture import callsite as _callsite

Undo = list[tuple[Any, str | None, object]]
"""What to put back: (cell, None, original) or (generated globals, name, original)."""


def is_class(value: object) -> TypeGuard[type]:
    """``value`` is a class, by its real type: ``isinstance(value, type)`` would ask
    a lazy proxy's ``__class__``, which loads what it stands for (openai's
    module-level ``openai.beta``, ``openai.chat``... import their resources and
    try to build the default client), for every global a scan looks at."""
    return issubclass(type(value), type)


def generated_classes(values: Iterable[object]) -> list[type]:
    """The classes among ``values`` whose ``__init__`` was compiled from a string (a
    dataclass's, attrs')."""
    out = []
    for value in values:
        if is_class(value):
            init = vars(value).get("__init__")
            code = getattr(init, "__code__", None)
            if code is not None and _callsite.generated(code.co_filename):
                out.append(value)
    return out


def current(value: object, originals: Mapping[int, object],
             patched: frozenset[tuple[int, str]]) -> object | None:
    """What replaces ``value`` now, when it is a patched original (or a
    ``functools.partial`` of one: a new partial with the same arguments, e.g.
    ``partial(datetime.now, timezone.utc)``); else None (also used by
    :mod:`.modelfactories`)."""
    new = originals.get(id(value))
    if new is not None:
        return new
    if type(value) is functools.partial:
        inner = current(value.func, originals, patched)
        if inner is None or not callable(inner):
            return None
        return functools.partial(inner, *value.args, **value.keywords)
    if type(value) is types.BuiltinMethodType:
        owner = value.__self__
        name = value.__name__
        if isinstance(owner, type) and any((id(k), name) in patched for k in owner.__mro__):
            now = getattr(owner, name)
            return None if now == value else now
    return None


def rebind(classes: Iterable[type], originals: Mapping[int, object],
           patched: frozenset[tuple[int, str]]) -> Undo:
    """Swap the patched originals the generated ``__init__`` of ``classes`` captured.

    ``originals`` maps the id of each replaced module function to its replacement;
    ``patched`` holds (id(type), name) of each method replaced in a type's dictionary.
    """
    undo: Undo = []
    for cls in classes:
        init = vars(cls).get("__init__")
        for cell in getattr(init, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            new = current(value, originals, patched)
            if new is not None:
                cell.cell_contents = new
                undo.append((cell, None, value))
        scope = getattr(init, "__globals__", None)
        code = getattr(init, "__code__", None)
        if scope is not None and code is not None:
            for name in code.co_names:  # attrs: a global of the method's own globals
                if not name.startswith("__attr_factory_"):
                    continue
                value = scope.get(name)
                new = None if value is None else current(value, originals, patched)
                if new is not None:
                    scope[name] = new
                    undo.append((scope, name, value))
    return undo


def restore(undo: Undo) -> None:
    """Put back what :func:`rebind` swapped (newest first)."""
    while undo:
        where, name, value = undo.pop()
        if name is None:
            where.cell_contents = value
        else:
            where[name] = value
