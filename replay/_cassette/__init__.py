"""Layer 1, the cassette: the event model and the file it is stored in.

Holds the frozen event records (``events``), the one exception family
(``errors``), divergence records and structural diffs of values (shown to
people by ``difftext``, the one formatter of changed values), redaction of
secrets before anything is written, the msgpack codec with content
de-duplication (``codec``), and the file format: layout and limits, the
crash-safe writer, the bounded hostile-input reader.

May import: the standard library and third-party packages only, never another
layer of agent-replay. Contract to the layers above: the names re-exported
here (the file API), plus the record types in ``events``, ``errors``,
``divergence``, ``structdiff``, ``difftext`` and ``redact``.
"""

from __future__ import annotations

from replay._cassette.eventlog import EventLog
from replay._cassette.layout import (
    EXTENSION,
    FORMAT_VERSION,
    MAGIC,
    Cassette,
    Header,
    Limits,
    PathArg,
    VerifyReport,
)
from replay._cassette.reader import iter_events, read_cassette, read_header, verify
from replay._cassette.writer import CassetteWriter, encode_header

__all__ = [
    "EXTENSION",
    "FORMAT_VERSION",
    "MAGIC",
    "Cassette",
    "CassetteWriter",
    "EventLog",
    "Header",
    "Limits",
    "PathArg",
    "VerifyReport",
    "encode_header",
    "iter_events",
    "read_cassette",
    "read_header",
    "verify",
]
