"""What an HTTP app (ASGI or WSGI) answered to a replayed request."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Response:
    """What an ASGI or WSGI app answered to a replayed request."""

    status: int
    """HTTP status."""
    headers: tuple[tuple[str, str], ...]
    """Response headers."""
    body: bytes
    """The whole body."""
