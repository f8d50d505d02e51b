"""Layer 3, runs: opening, closing and steering record/replay sessions.

Holds ``record`` / ``play`` / ``run`` and ``ReplayResult`` (``api``), forks
(``fork``), what-if edits (``edit``), breakpoints (``breakpoint``), the child
process bootstrap behind ``replay record|play -- CMD`` (``bootstrap``,
``child``), the vcrpy cassette import (``import_vcr``) and the path checks
every command and the pytest plugin make before a cassette is opened or a
program started (``preflight``), the modules of layers above imported when a
session starts (``extensions``), a run's entry point and how it is called
again (``entry``, with ``lifespan`` for ASGI apps and ``wsgi`` for WSGI
requests), and the run stores (``store``: the ``Store``
interface, the local folder with its SQLite index, ``open_store`` by url).

May import: ``replay._cassette`` and ``replay._capture``. Contract to the layers
above: ``Run``, ``record``, ``play``, ``fork``, ``edit``, ``run_child``.
"""
