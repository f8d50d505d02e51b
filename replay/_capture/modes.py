"""How a cassette is used by a run: :class:`RecordMode` (its own module so that
``session.py`` stays one responsibility; ``session`` re-exports it)."""

from __future__ import annotations

import enum


class RecordMode(enum.Enum):
    """How a cassette is used. Unknown values are rejected loudly."""

    RECORD = "record"
    """Run live and record every event (overwrites the cassette)."""
    REPLAY = "replay"
    """Strict replay: answer everything from the cassette, never the network."""
    AUTO = "auto"
    """Replay when the cassette exists, else record it."""
    NEW_EVENTS = "new-events"
    """Replay what matches; run live and append what the cassette lacks."""

    @classmethod
    def parse(cls, value: RecordMode | str) -> RecordMode:
        """The mode named by ``value``; ValueError listing the valid names."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown record mode {value!r}; use one of: {names}") from None
