"""Patched functions that pydantic models compiled into their validators before the patches.

``created: datetime = Field(default_factory=datetime.now)`` on a model defined
before a session began is called by pydantic-core, which holds the factory in the
model's compiled validator: replacing ``datetime.now`` in its type (or
``time.time``, ``uuid.uuid4`` in their modules) never reaches it, so every such
model would read the live clock, on replay too. At install, the loaded pydantic
models and pydantic dataclasses whose validator holds a patched original get a
validator compiled from a copy of their own core schema with each such factory
swapped for what its owner now holds (as :mod:`.rebind` does for dataclasses'
generated ``__init__``); a model that embeds another model's schema gets its own
copy, so nested defaults are covered. The fields' ``FieldInfo.default_factory``
is swapped too (``model_construct`` calls it in Python). Uninstall puts the very
same validators and factories back, so nothing is rebuilt twice and nothing of
the models' own schema generation runs again (no forward reference is
re-resolved).

A factory wrapped in ``functools.partial`` gets a partial of the patched
function. Not reached: a ``TypeAdapter`` made before the session (it holds its
own validator) and a validator wrapped by a pydantic plugin (docs/recording.md).
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from replay._capture import rebind as _rebind

Undo = list[tuple[object, str, object, object]]
"""What to put back: (owner, attribute, original, what replaced it)."""

_Found = tuple[int, int]
_verdicts: weakref.WeakKeyDictionary[type, _Found] = weakref.WeakKeyDictionary()
"""By class: (id of the validator looked at, 1 when it holds a patched original)."""
_verdicts_for: frozenset[int] = frozenset()


def dataclasses_of(values: Iterable[object]) -> list[type]:
    """The pydantic dataclasses among ``values`` (a module's globals)."""
    return [v for v in values if _rebind.is_class(v) and "__pydantic_validator__" in vars(v)
            and "__dataclass_fields__" in vars(v)]


def candidates(module_classes: Iterable[type]) -> list[type]:
    """Every pydantic model now defined (subclasses of ``BaseModel``, wherever made)
    and the pydantic dataclasses among ``module_classes``."""
    main = sys.modules.get("pydantic.main")
    base = getattr(main, "BaseModel", None)
    out: list[type] = []
    seen: set[int] = set()
    if isinstance(base, type):
        stack: list[type] = list(type.__subclasses__(base))
        while stack:
            cls = stack.pop()
            if id(cls) not in seen:
                seen.add(id(cls))
                out.append(cls)
                stack.extend(type.__subclasses__(cls))
    for cls in module_classes:
        if id(cls) not in seen and "__pydantic_validator__" in vars(cls):
            seen.add(id(cls))
            out.append(cls)
    return out


class _Swapper:
    """Copies a core schema with every patched original replaced (copy on write:
    a part with nothing to replace is shared, not copied)."""

    def __init__(self, originals: Mapping[int, object],
                 patched: frozenset[tuple[int, str]]) -> None:
        self.originals = originals
        self.patched = patched
        self.memo: dict[int, object] = {}
        self.found = False

    def swap(self, node: object, depth: int = 0) -> object:
        if isinstance(node, dict):
            items: Iterable[tuple[Any, object]] = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            if callable(node) and not isinstance(node, type):
                new = _rebind.current(node, self.originals, self.patched)
                if new is not None:
                    self.found = True
                    return new
            return node
        key = id(node)
        if key in self.memo:
            return self.memo[key]
        if depth > 400:  # far deeper than any schema pydantic makes: leave it be
            return node
        changed: dict[Any, object] = {}
        for k, value in items:
            new = self.swap(value, depth + 1)
            if new is not value:
                changed[k] = new
        out: object = node
        if changed:
            copy: Any = dict(node) if isinstance(node, dict) else list(node)
            for k, new in changed.items():
                copy[k] = new
            out = copy
        self.memo[key] = out
        return out


def _schema_validator() -> Any:
    """pydantic-core's ``SchemaValidator`` class, when pydantic is loaded."""
    core = sys.modules.get("pydantic_core")
    validator = getattr(core, "SchemaValidator", None)
    return validator if isinstance(validator, type) else None


def _build(compiled: Any, schema: object, rest: tuple[object, ...]) -> object:
    """A validator compiled from ``schema`` with the original's other arguments."""
    return compiled(schema, *rest)


def rebind(classes: Iterable[type], originals: Mapping[int, object],
           patched: frozenset[tuple[int, str]]) -> Undo:
    """Give each of ``classes`` whose validator calls a patched original a validator
    that calls the patched function; swap the fields' factories likewise.

    ``originals`` and ``patched`` are as for :func:`.rebind.rebind`."""
    global _verdicts_for
    undo: Undo = []
    compiled: Any = _schema_validator()
    if compiled is None:
        return undo
    key = frozenset(originals)
    if key != _verdicts_for:
        _verdicts.clear()
        _verdicts_for = key
    for cls in classes:
        own = vars(cls)
        validator = own.get("__pydantic_validator__")
        if type(validator) is not compiled:  # not built yet, a mock, or a plugin's wrapper
            continue
        seen = _verdicts.get(cls)
        if seen is not None and seen[0] == id(validator) and not seen[1]:
            continue
        try:  # what the validator was built from: (schema, config, ...)
            reduced: Any = validator.__reduce__()
            args = reduced[1]
            schema, rest = args[0], tuple(args[1:])
        except (TypeError, ValueError, IndexError):
            continue
        swapper = _Swapper(originals, patched)
        new_schema = swapper.swap(schema)
        _verdicts[cls] = (id(validator), int(swapper.found))
        if not swapper.found:
            continue
        try:
            new_validator = _build(compiled, new_schema, rest)
        except Exception:  # pydantic-core refused the copy: leave the model as it is
            continue
        undo.append((cls, "__pydantic_validator__", validator, new_validator))
        type.__setattr__(cls, "__pydantic_validator__", new_validator)
        _swap_fields(cls, originals, patched, undo)
    return undo


def _swap_fields(cls: type, originals: Mapping[int, object],
                 patched: frozenset[tuple[int, str]], undo: Undo) -> None:
    infos: list[Any] = list((vars(cls).get("__pydantic_fields__") or {}).values())
    for field in (vars(cls).get("__dataclass_fields__") or {}).values():
        infos.append(getattr(field, "default", None))  # a pydantic dataclass's FieldInfo
    for info in infos:
        factory = getattr(info, "default_factory", None)
        if factory is None or not hasattr(info, "get_default"):
            continue
        new = _rebind.current(factory, originals, patched)
        if new is not None:
            undo.append((info, "default_factory", factory, new))
            info.default_factory = new


def restore(undo: Undo) -> None:
    """Put back what :func:`rebind` swapped (newest first), where it is still there (a
    model the program rebuilt during the session keeps its new validator)."""
    while undo:
        owner, attr, value, replacement = undo.pop()
        if getattr(owner, attr, None) is replacement:
            setattr(owner, attr, value)
