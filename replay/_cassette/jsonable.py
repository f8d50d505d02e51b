"""Cassette values as JSON, for ``--json`` outputs (bytes become ``{"$bytes": base64}``)."""

from __future__ import annotations

import base64
from typing import Any

from replay._cassette.events import Event


def jsonable(value: Any) -> Any:
    """``value`` with bytes base64-wrapped and tuples as lists."""
    if isinstance(value, bytes):
        try:
            return {"$text": value.decode("utf-8")}
        except UnicodeDecodeError:
            return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def event_json(ev: Event) -> dict[str, Any]:
    """One event as a JSON object (the shape documented in docs/cli.md)."""
    return jsonable(ev.to_map())  # type: ignore[no-any-return]
