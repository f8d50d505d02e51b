"""The one exception family of agent-replay.

    ReplayError
     +-- CassetteError                  a cassette file cannot be read as written
     |    +-- CassetteTruncatedError    the file ends early (a crashed recording)
     |    +-- CassetteCorruptError      bytes were changed: bad CRC, framing, header
     |    +-- CassetteLimitError        the file asks for more than the read limits
     |    +-- CassetteVersionError      a format version this release cannot read
     +-- DivergenceError                the run under replay asked for something
     |                                  the recording cannot answer
     +-- NetworkBlockedError            strict replay refused a real connection
     +-- UnrecordableValueError         a value cannot be stored in a cassette
     +-- SessionError                   record/play used wrongly (nesting, state)
     +-- StoreError                     a run store cannot be opened or has no such run
     +-- ExportError                    a run could not be exported (extra, receiver)

Every :class:`CassetteError` carries ``offset``: the byte offset in the file at
which reading failed (for data inside the compressed stream, the file position
of the compressed input the decoder had consumed when it failed), and
``events_read``: how many complete events came before it. Nothing else escapes
the reader: no raw msgpack, zstandard or ``struct`` errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from replay._cassette.divergence import Divergence


class ReplayError(Exception):
    """Base class of every error agent-replay raises on purpose."""


class CassetteError(ReplayError):
    """A cassette cannot be read as it was written.

    ``offset`` is the byte offset in the file where reading failed;
    ``events_read`` counts the complete events read before it.
    """

    kind = "damaged"

    def __init__(self, message: str, *, offset: int, events_read: int = 0,
                 path: str | None = None) -> None:
        self.offset = offset
        self.events_read = events_read
        self.path = path
        self.reason = message
        where = f"{path}: " if path else ""
        super().__init__(f"{where}{self.kind} at offset {offset}: {message}")


class CassetteTruncatedError(CassetteError):
    """The file ends before its end marker: the recording did not close cleanly."""

    kind = "truncated"


class CassetteCorruptError(CassetteError):
    """The bytes are not what was written: a checksum, frame or header is wrong."""

    kind = "corrupt"


class CassetteLimitError(CassetteError):
    """The file declares more than the reader's limits allow (window, record size)."""

    kind = "over limit"


class CassetteVersionError(CassetteError):
    """The file's format version is newer than this release can read."""

    kind = "unsupported version"


class DivergenceError(ReplayError):
    """The code under replay asked for something the recording cannot answer.

    ``divergence`` holds the structured report (event number, channel, grade,
    expected and actual request, both call sites, closest candidates).
    """

    def __init__(self, divergence: Divergence) -> None:
        self.divergence = divergence
        super().__init__(divergence.report())


class NetworkBlockedError(ReplayError):
    """Strict replay refused a real network connection to ``host:port``."""

    def __init__(self, host: str, port: int | None, detail: str = "") -> None:
        self.host = host
        self.port = port
        target = f"{host}:{port}" if port is not None else host
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"network blocked during replay: connection to {target} is not in the "
            f"cassette{extra}"
        )


class UnrecordableValueError(ReplayError, TypeError):
    """A value given to the recorder cannot be stored (not JSON-like, no codec)."""

    def __init__(self, value: Any, where: str) -> None:
        self.value_type = type(value).__qualname__
        super().__init__(
            f"cannot record a {type(value).__module__}.{type(value).__qualname__} "
            f"in {where}: store JSON-like values (None, bool, int, float, str, bytes, "
            f"list, tuple, dict) or pass dump=/load= to the decorator"
        )


class SessionError(ReplayError, RuntimeError):
    """record()/play() was used in a way that cannot work (nesting, reuse)."""


class StoreError(ReplayError):
    """A run store cannot be opened or used, or holds no run by that id."""


class ExportError(ReplayError):
    """A run could not be exported: an optional extra is missing, or the receiver
    (an OTLP endpoint) refused or could not be reached."""
