"""Modules of the layers above that extend every session, imported when one starts.

Such a module registers hooks when it is imported: ``SESSION_HOOKS``
(``replay._capture.session``) or ``HEADER_META`` (``replay._runs.headers``); the
drift fingerprint written into every new cassette's header and the drift probe
are two. This layer may not import them, and importing them up front would make
``import replay`` pay for the whole package, so the public ``replay`` package
names them here (it runs before any of its submodules is imported) and
:func:`load` imports them when a session starts: a run started by any surface
(the API, the CLI, the pytest plugin, a ``replay record -- CMD`` child) has
them, as when ``import replay`` imported everything.
"""

from __future__ import annotations

import importlib

EXTENSIONS: list[str] = []
"""Dotted names of the modules :func:`load` imports, in order."""


def add(*modules: str) -> None:
    """Name modules to import before the first session starts (each once)."""
    EXTENSIONS.extend(m for m in modules if m not in EXTENSIONS)


_loaded = 0  # how many of EXTENSIONS load() has imported


def load() -> None:
    """Import every named module (a no-op for those already imported: one comparison
    per session once they all are)."""
    global _loaded
    if _loaded == len(EXTENSIONS):
        return
    for name in EXTENSIONS:
        importlib.import_module(name)
    _loaded = len(EXTENSIONS)
