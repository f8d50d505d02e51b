"""Headers and whole cassettes with redaction applied.

``header_for`` is the header a writer gets (every layer that starts a
cassette calls it, so the argv and metadata, which sit uncompressed at the
start of the file, are redacted like the events); ``shown`` is the cassette
a person sees (``replay show``, ``replay diff``): redacted with the default
rules whatever it was written with, at no cost when it was written under the
current ones (and, for a packed file, event by event as they are decoded).
"""

from __future__ import annotations

import dataclasses

from replay._cassette.eventlog import EventLog
from replay._cassette.layout import Cassette, Header
from replay._cassette.redact import DEFAULT, RULES_MARK, Redactor


def header_for(header: Header, redactor: Redactor | None) -> Header:
    """The header to write with ``redactor`` (None: unredacted, and not marked redacted)."""
    if redactor is None:
        if RULES_MARK not in header.meta:
            return header
        return dataclasses.replace(header, meta={k: v for k, v in header.meta.items()
                                                 if k != RULES_MARK})
    return dataclasses.replace(
        header, argv=redactor.argv(header.argv), created=redactor.text(header.created),
        python=redactor.text(header.python), platform=redactor.text(header.platform),
        meta=redactor.meta(header.meta))


def shown(cassette: Cassette, redactor: Redactor = DEFAULT) -> Cassette:
    """``cassette`` as it may be shown: its header and every event redacted."""
    if redactor.applied(cassette.header.meta):
        return cassette
    events = cassette.events
    return dataclasses.replace(cassette, header=header_for(cassette.header, redactor),
                               events=events.map(redactor) if isinstance(events, EventLog)
                               else tuple(redactor(e) for e in events))
