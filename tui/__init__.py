"""The agent-replay terminal UI (Textual); imports only ``replay``'s public names.

``replay tui FILE [OTHER]`` runs :class:`tui.app.ReplayApp`. Layout: the app
and its screens (``app``, ``main_view`` and ``main_screen`` with its key map
``keys``, ``diff_screen``, ``stats``, ``modals``), widgets (``timeline``,
``steptree``, ``detail``, ``conversation``, ``stream``, ``rendered``), and plain
logic without Textual (``model``, ``payloads``, ``chat``, ``render``, ``stepinfo``).
"""

from __future__ import annotations

__all__ = ["ReplayApp"]


def __getattr__(name: str) -> object:
    if name == "ReplayApp":  # lazy: importing tui must not start Textual
        from tui.app import ReplayApp
        return ReplayApp
    raise AttributeError(name)
