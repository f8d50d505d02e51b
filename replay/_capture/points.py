"""Every capture point, imported so that each registers its patches.

A run installs what is registered here as one unit (:mod:`replay._capture.patch`).
"""

from __future__ import annotations

from replay._capture import clock, mcp, randomness, taskhooks, thirdparty
from replay._capture import http as http

__all__ = ["clock", "http", "mcp", "randomness", "taskhooks", "thirdparty"]
