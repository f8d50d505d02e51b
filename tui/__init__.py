"""The agent-replay terminal UI (Textual); imports only ``replay``'s public names.

``replay tui FILE [OTHER]`` runs :class:`tui.app.ReplayApp`. Layout: the app
and its screens (``app``, ``main_screen``, ``diff_screen``, ``stats``,
``modals``), widgets (``timeline``, ``detail``, ``conversation``, ``stream``),
and plain logic without Textual (``model``, ``payloads``, ``chat``, ``render``).
"""

from __future__ import annotations

__all__ = ["ReplayApp"]


def __getattr__(name: str) -> object:
    if name == "ReplayApp":  # lazy: importing tui must not start Textual
        from tui.app import ReplayApp
        return ReplayApp
    raise AttributeError(name)
