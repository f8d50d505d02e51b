"""Surface, services: recording the runs of a long-lived program into a store.

Holds the decorator ``@replay.recorded`` and the shared :class:`Recorder`
with its retention policy and ``replay.flag`` (``recorder``), the pure ASGI
middleware that records each HTTP request (``asgi``), its WSGI twin
(``wsgi``), and the index row of a finished or crashed run, read back from
its cassette (``rows``).

May import every layer below (``_cassette``, ``_capture``, ``_runs`` with its
stores, ``_analysis`` for models, tokens and cost). The CLI and the pytest
plugin use it; ``replay/__init__.py`` re-exports ``recorded``, ``flag``,
``RecordingMiddleware`` and ``WSGIRecordingMiddleware``.
"""
