"""A run to analyse, as given: a cassette path, a :class:`~replay.Cassette` or events."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TypeAlias

from replay._cassette import Cassette, read_cassette
from replay._cassette.events import Event

Source: TypeAlias = "str | os.PathLike[str] | Cassette | Iterable[Event]"
"""What the step and context readers take."""


def events_of(source: Source, what: str) -> list[Event]:
    """The events of ``source`` in ``seq`` order (a damaged file: the events it holds).

    Raises ``TypeError`` naming ``what`` for anything else.
    """
    if isinstance(source, Cassette):
        events: Sequence[Event] = source.events
    elif isinstance(source, str | os.PathLike):
        events = read_cassette(source, strict=False).events
    else:
        events = list(source)
        if not all(isinstance(e, Event) for e in events):
            raise TypeError(f"{what}: expected a cassette path, a Cassette or a list of events")
    return sorted(events, key=lambda e: e.seq)
