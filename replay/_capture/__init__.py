"""Layer 2, capture: a run in progress and everything that intercepts its inputs.

Holds the session (``session``: numbering, recording, replay matching), logical
task identity (``tasks``), call sites (``callsite``), the replay matcher
(``matcher``), all patching of the standard library installed and removed as
one unit (``patch``), tools and captures (``tools``), recorded exceptions
(``exc``) and value encoding (``values``); HTTP capture is the ``http``
subpackage, MCP client sessions the ``mcp`` one.

May import: ``replay._cassette``. Contract to the layers above: ``Session``,
``current()``, ``RecordMode``, ``SESSION_HOOKS`` (layers above register their
per-session set-up there), ``patch.install()`` / ``patch.uninstall()``, and the
interceptor contract in docs/architecture.md.
"""
