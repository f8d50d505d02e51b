"""Before a cassette is opened or a program started: is the path usable?

Every command and the pytest plugin ask here, so a path that cannot be used
reads the same everywhere, and ``replay record/play/fork/drift -- PROGRAM``
stop *before* the program starts instead of running it unrecorded:

    no such cassette: run.replay
    no such cassette: run.replay; a crashed recording left run.replay.partial: replay
      show run.replay.partial                                  (one line, wrapped here)
    run.replay is a directory, not a cassette
    cannot read run.replay: Permission denied
    run.replay is not a cassette (it does not start with AGTRPLAY)
    run.replay has a damaged header (corrupt at offset 52: header checksum mismatch)
    cannot write out/run.replay: the directory out does not exist

The checks return a :class:`Problem` (None when the path is fine) rather than
raise; :func:`require` turns the first one into a :class:`CassettePathError`.
They look at the path and the header only: a cassette damaged further in is
the reader's to report, with its offset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from replay._cassette import MAGIC, PathArg, read_header

if TYPE_CHECKING:  # imported by run_problem: `replay show` checks paths without the session
    from replay._capture.session import RecordMode
from replay._cassette.errors import CassetteError, CassetteVersionError, SessionError

Kind = Literal["missing", "directory", "unreadable", "not a cassette", "damaged header",
               "no directory", "not writable"]


@dataclass(frozen=True)
class Problem:
    """Why a path cannot be used as a cassette, or as where one is written."""

    kind: Kind
    """What is wrong, as a word a caller can branch on."""
    path: str
    """The path as given (not made absolute): messages show what the user typed."""
    message: str
    """The one line to show, without a ``replay:`` prefix."""
    partial: str | None = None
    """``kind == "missing"``: the ``.partial`` a crashed recording left there, if any."""

    def __str__(self) -> str:
        return self.message


class CassettePathError(SessionError):
    """A cassette path cannot be used; nothing was opened and no program started."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem
        """What is wrong with the path."""


def missing(path: PathArg, *, label: str | None = None) -> Problem:
    """The problem of a cassette that is not there (pointing at a crashed recording's
    ``.partial`` when one is). ``label``: the path as messages show it."""
    p = label if label is not None else os.fspath(path)
    if os.path.isfile(os.fspath(path) + ".partial"):
        partial = p + ".partial"
        return Problem("missing", p, f"no such cassette: {p}; a crashed recording left "
                       f"{partial}: replay show {partial}", partial)
    return Problem("missing", p, f"no such cassette: {p}")


def cassette_problem(path: PathArg, *, header: bool = True,
                     label: str | None = None) -> Problem | None:
    """What stops ``path`` being read as a cassette, or None.

    ``header=False`` checks only that it is a readable file (``verify`` reports a
    bad header itself; ``scan`` also takes vcrpy YAML). ``label``: the path as
    messages show it (default: as given).
    """
    path = os.fspath(path)
    p = label if label is not None else path
    if not os.path.exists(path):
        return missing(path, label=p)
    if os.path.isdir(path):
        return Problem("directory", p, f"{p} is a directory, not a cassette")
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC))
    except OSError as exc:
        return Problem("unreadable", p, f"cannot read {p}: {exc.strerror or exc}")
    if not header:
        return None
    if not head:
        return Problem("not a cassette", p, f"{p} is empty, not a cassette")
    if head != MAGIC[:len(head)]:
        return Problem("not a cassette", p,
                       f"{p} is not a cassette (it does not start with {MAGIC.decode()})")
    try:
        read_header(path)
    except CassetteVersionError as exc:
        return Problem("damaged header", p, f"{p} needs a newer agent-replay ({exc.reason})")
    except CassetteError as exc:
        return Problem("damaged header", p, f"{p} has a damaged header "
                       f"({exc.kind} at offset {exc.offset}: {exc.reason})")
    except OSError as exc:
        return Problem("unreadable", p, f"cannot read {p}: {exc.strerror or exc}")
    return None


def output_problem(path: PathArg, *, label: str | None = None) -> Problem | None:
    """What stops a cassette being written at ``path`` (through ``path.partial``), or None.

    ``label``: the path as messages show it (default: as given)."""
    path = os.fspath(path)
    p = label if label is not None else path
    if os.path.isdir(path):
        return Problem("directory", p, f"cannot write {p}: it is a directory")
    folder, shown = os.path.dirname(path) or ".", os.path.dirname(p) or "."
    if not os.path.exists(folder):
        return Problem("no directory", p,
                       f"cannot write {p}: the directory {shown} does not exist")
    if not os.path.isdir(folder):
        return Problem("no directory", p, f"cannot write {p}: {shown} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        return Problem("not writable", p,
                       f"cannot write {p}: the directory {shown} is not writable")
    if os.path.isdir(path + ".partial"):
        return Problem("directory", p, f"cannot write {p}: {p}.partial is a directory")
    return None


def run_problem(mode: RecordMode | str, cassette: PathArg, *, output: PathArg | None = None,
                at: int | None = None, label: str | None = None) -> Problem | None:
    """What stops a run in ``mode`` on ``cassette`` (writing ``output``) from starting.

    Resolves the mode as :meth:`replay.Run.start` does: ``auto`` records when
    the cassette is missing, and so does ``new-events`` unless it is a fork.
    ``label``: the cassette's path as messages show it.
    """
    from replay._capture.session import RecordMode

    mode = RecordMode.parse(mode)
    exists = os.path.exists(cassette)
    out, out_label = (output, None) if output is not None else (cassette, label)
    if mode is RecordMode.RECORD or (not exists and (
            mode is RecordMode.AUTO or (mode is RecordMode.NEW_EVENTS and at is None))):
        return output_problem(out, label=out_label)
    problem = cassette_problem(cassette, label=label)
    if problem is None and mode is RecordMode.NEW_EVENTS:
        problem = output_problem(out, label=out_label)
    return problem


def require(*problems: Problem | None) -> None:
    """Raise :class:`CassettePathError` for the first problem given, if any."""
    for problem in problems:
        if problem is not None:
            raise CassettePathError(problem)
