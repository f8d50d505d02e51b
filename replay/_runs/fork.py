"""Forks: replay a run up to event N, then go live and record the rest.

    with replay.fork("run.replay", at=12, output="fork.replay"):
        agent()          # events #0..#11 from run.replay, the rest live

A fork is a new-events run (:class:`~replay.RecordMode`) over the first ``at``
events of its parent: each logical task is answered from its recorded events
before ``at``, in order, and runs live once those are used up; a request that
does not match before then diverges (``live=True``: runs live instead). The
new cassette holds the run as it happened, so for a run that asks in the
recorded order its first ``at`` events equal the parent's.

The child names its parent in its header meta (:class:`ParentLink`): the
parent file's SHA-256, its path, and the fork point (or, for an edited copy,
the event that was edited).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from replay._capture.session import RecordMode
from replay._cassette import Cassette, read_header
from replay._cassette.events import Value
from replay._cassette.redact import Redactor
from replay._runs.api import Run, Unused

META_KEY = "parent"
"""The header meta key holding the parent link."""


@dataclass(frozen=True, slots=True)
class ParentLink:
    """Where a forked or edited cassette came from."""

    sha256: str
    """SHA-256 of the parent cassette file's bytes (hex)."""
    path: str
    """The parent's absolute path when the child was made."""
    at: int | None = None
    """Fork: the first event number that ran live."""
    edited: int | None = None
    """Edit: the event whose response was changed."""

    def to_value(self) -> dict[str, Value]:
        """The link as stored in header meta."""
        out: dict[str, Value] = {"sha256": self.sha256, "path": self.path}
        if self.at is not None:
            out["at"] = self.at
        if self.edited is not None:
            out["edited"] = self.edited
        return out

    @classmethod
    def from_value(cls, value: Any) -> ParentLink | None:
        """The link in a header meta value; None when absent or malformed (untrusted)."""
        if not isinstance(value, Mapping):
            return None
        sha, path = value.get("sha256"), value.get("path")
        at, edited = value.get("at"), value.get("edited")
        if not isinstance(sha, str) or not isinstance(path, str):
            return None
        if any(v is not None and type(v) is not int for v in (at, edited)):
            return None
        return cls(sha, path, at, edited)

    def is_parent(self, path: str | os.PathLike[str]) -> bool:
        """Whether the file at ``path`` is this link's parent, byte for byte."""
        return file_sha256(path) == self.sha256


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def parent_of(cassette: str | os.PathLike[str] | Cassette) -> ParentLink | None:
    """The parent a forked or edited cassette names; None for an original recording."""
    header = (cassette.header if isinstance(cassette, Cassette)
              else read_header(cassette))
    return ParentLink.from_value(header.meta.get(META_KEY))


def link_meta(path: str | os.PathLike[str], *, at: int | None = None,
              edited: int | None = None) -> dict[str, Value]:
    """Header meta naming ``path`` as the parent (hashes the file now)."""
    link = ParentLink(file_sha256(path), os.path.abspath(path), at, edited)
    return {META_KEY: link.to_value()}


def fork(path: str | os.PathLike[str], *, at: int, output: str | os.PathLike[str],
         live: bool = False, redact: bool | Redactor = True,
         unused: Unused | str = Unused.WARN, metadata: dict[str, Value] | None = None,
         allow_damaged: bool = False) -> Run:
    """A run that replays ``path``'s events before ``at`` and records the rest live.

    The continuation goes to ``output`` (written atomically when the run ends),
    whose header names its parent (:func:`parent_of`). ``live=True`` lets a
    request that does not match before ``at`` run live instead of diverging.
    Use it like :func:`replay.play`: ``with``, ``async with``, or as a decorator.
    """
    if at < 0:
        raise ValueError(f"at must be an event number >= 0, not {at}")
    meta = dict(metadata or {})
    meta.update(link_meta(path, at=at))
    return Run(path, RecordMode.NEW_EVENTS, output=output, at=at, live=live, redact=redact,
               unused=unused, metadata=meta, allow_damaged=allow_damaged)
