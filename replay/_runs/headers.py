"""What a new cassette's header holds besides the run's own metadata.

``HEADER_META`` providers (the context fingerprint, registered by the analysis
layer) fill the header's metadata; :func:`header_base` is the whole constant
part, taken once by a service that records many runs (:class:`~replay.Run`'s
``base=``).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from replay._cassette import Header
from replay._cassette.events import Value
from replay._cassette.redact import Redactor
from replay._cassette.redacted import header_for

CAPTURE_VERSION = 2
"""Header ``meta["capture"]``: 2 marks library reads (``meta["lib"]`` on events).
Cassettes without it had every read in its task's queue."""


HEADER_META: list[Callable[[], dict[str, Value]]] = []
"""Providers of header metadata (the context fingerprint) for new cassettes."""


def header_context(redactor: Redactor | None) -> dict[str, Value]:
    """The header metadata every new cassette of this process gets (the capture
    version and the providers' context fingerprint), redacted by ``redactor``.

    A service recording many runs takes it once, in :func:`header_base`,
    instead of taking the fingerprint per run.
    """
    meta: dict[str, Value] = {"capture": CAPTURE_VERSION}
    for provider in HEADER_META:
        meta.update(provider())
    return redactor.meta(meta) if redactor is not None else meta


def header_base(redactor: Redactor) -> Header:
    """What every new cassette of this process has in its header: argv, Python,
    platform, the capture version and the context fingerprint, redacted by
    ``redactor``. A service recording many runs takes it once and passes it to
    each :class:`Run` (``base=``), which copies it with its own start time and
    metadata (the only parts redacted per run)."""
    header = header_for(Header.new(), redactor)
    return Header(header.created, header.argv, header.python, header.platform,
                  {**header.meta, **header_context(redactor)})


def created_now() -> str:
    """Now, as :meth:`Header.new` writes it (``2024-05-01T12:00:00.000000Z``)."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")[:-6] + "Z"
