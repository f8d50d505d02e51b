"""Where in the user's code an event was asked for, and whether to record it.

Walking the stack is on the recorder's per-event path, so each code object is
classified once and cached: ours (replay/), infrastructure (standard-library
modules whose own clock/random use is not an agent input: logging, asyncio,
threading...), other standard library, third-party library, or user code.

The call site is the first user frame; failing that the first library frame
(an SDK's internals), so an event made deep inside an SDK still points at the
line that asked for it. A call whose first non-replay frame is infrastructure
is passed through unrecorded: a log record's timestamp is not an input.
"""

from __future__ import annotations

import asyncio.events
import os
import site
import sys
import sysconfig
from types import CodeType, FrameType

from replay._cassette.events import CallSite

OURS, INFRA, STDLIB, LIB, USER, GEN = range(6)
"""The kinds of code; ``GEN`` is code made at run time from a string (a dataclass's
``__init__``, a namedtuple's ``__new__``, attrs' methods: ``<string>``, ``<attrs
generated init ...>``): it belongs to whoever called it, so the walk looks past it,
and takes it for the user's only when nothing above it is (``python -c``, code
``exec``'d at the top)."""

_USER_PSEUDO = ("<stdin>", "<console>", "<input>", "<ipython-input-")
"""Pseudo file names that are the user's typing, not generated code."""


def generated(filename: str) -> bool:
    """Whether ``filename`` names code made at run time from a string (kind ``GEN``)."""
    return (filename.startswith("<") and not filename.startswith("<frozen")
            and not filename.startswith(_USER_PSEUDO))

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # replay/

# Standard-library modules whose own clock/random reads are not agent inputs.
# Modules that *dispatch* user callables (asyncio, threading, concurrent.futures,
# queue, sched) are deliberately absent: a tool coroutine at the top of a task is
# called straight from the event loop, and must still be recorded.
_INFRA_MODULES = (
    "logging", "selectors", "socket", "ssl", "tempfile", "importlib",
    "multiprocessing", "subprocess", "http", "urllib", "zipfile", "tarfile", "shutil",
    "warnings", "traceback", "linecache", "inspect", "unittest",
)


def _dirs(paths: list[str]) -> tuple[str, ...]:
    out = []
    for p in paths:
        if p:
            real = os.path.realpath(p)
            for q in {p, real}:
                out.append(q.rstrip(os.sep) + os.sep)
    return tuple(sorted(set(out), key=len, reverse=True))


def _site_dirs() -> tuple[str, ...]:
    paths = [sysconfig.get_paths().get("purelib", ""), sysconfig.get_paths().get("platlib", "")]
    try:
        paths += site.getsitepackages()
    except AttributeError:  # pragma: no cover - some virtualenv layouts
        pass
    paths.append(site.getusersitepackages() or "")
    paths += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    return _dirs(paths)


_SITE = _site_dirs()
_STDLIB_DIRS = _dirs([sysconfig.get_paths().get("stdlib", ""),
                      sysconfig.get_paths().get("platstdlib", "")])
_INFRA_PREFIXES = tuple(
    d + m + suffix for d in _STDLIB_DIRS for m in _INFRA_MODULES for suffix in (os.sep, ".py")
)

BOUNDARIES: set[CodeType] = {asyncio.events.Handle._run.__code__}
"""Where the event loop calls into a task: frames past it belong to whoever runs the
loop (``asyncio.run(main())``'s line), not to the task's creator or caller. Also
where a run's entry point begins (:func:`add_boundary`)."""


def add_boundary(code: CodeType) -> None:
    """Stop call-site and task-site walks at ``code``'s frames: a run's entry point
    (the ASGI middleware, a ``@replay.recorded`` wrapper), whose callers differ
    between the recording (uvicorn, a worker loop) and the replay (the replay's own
    call), so nothing past it may enter a site or a task id."""
    BOUNDARIES.add(code)
    _steps.clear()

_cache: dict[int, tuple[CodeType, int]] = {}
"""Kinds by code object identity (equal code in two files is two entries)."""
_IMPORT_FILES = frozenset({"<frozen importlib._bootstrap>",
                           "<frozen importlib._bootstrap_external>"})


def classify(code: CodeType) -> int:
    """The category of a code object (cached)."""
    hit = _cache.get(id(code))
    if hit is not None and hit[0] is code:
        return hit[1]
    kind = _classify_file(code.co_filename)
    _cache[id(code)] = (code, kind)
    return kind


_file_cache: dict[str, int] = {}


def _classify_file(filename: str) -> int:
    kind = _file_cache.get(filename)
    if kind is None:
        kind = _file_cache[filename] = _classify_path(filename)
    return kind


def _classify_path(filename: str) -> int:
    if filename.startswith("<frozen"):
        name = filename[8:-1]
        return INFRA if name.split(".")[0] in _INFRA_MODULES else STDLIB
    if filename.startswith("<"):
        return USER if filename.startswith(_USER_PSEUDO) else GEN
    path = filename if os.path.isabs(filename) else os.path.abspath(filename)
    if path.startswith(_PKG_DIR):
        return OURS
    if path.startswith(_SITE):
        return LIB
    if path.startswith(_INFRA_PREFIXES):
        return INFRA
    if path.startswith(_STDLIB_DIRS):
        return STDLIB
    return USER


_portable: dict[str, str] = {}


def portable(filename: str) -> str:
    """A library or standard-library file named the same on every machine: its path
    below site-packages or the standard library folder (else its base name)."""
    name = _portable.get(filename)
    if name is None:
        path = filename if os.path.isabs(filename) else os.path.abspath(filename)
        name = os.path.basename(filename)
        for d in _SITE + _STDLIB_DIRS:
            if path.startswith(d):
                name = path[len(d):].replace(os.sep, "/")
                break
        _portable[filename] = name
    return name


def find(frame: FrameType | None, library_wanted: bool = True) -> tuple[
        bool, CallSite | None, str | None]:
    """Walk out from ``frame``: (is this an infrastructure call?, call site, library).

    Starts at the interceptor's caller; frames of this package are skipped.
    The call site is the first user frame, else the first library frame.
    ``library`` is set when a library, not the user's code, made the call: the
    first frame that is user or library code (standard-library frames are
    plumbing: ``random.choice`` reads on behalf of its caller) is a library's;
    it is that frame's portable ``path:line`` (see :func:`portable`). With
    ``library_wanted`` false (a caller that ignores it: an HTTP or tool event) it is
    None whenever it would be a library's line, and never worked out (a frame's
    line number and a string per event).

    On the recorder's path for every event: the common case, a user frame
    right above agent-replay's own, costs two dictionary lookups (code kinds
    and call sites are cached by code object and line).
    """
    # Entries of the caches below hold their code object, so a hit by id() is that
    # very code: no other live object can have its id.
    kinds = _cache.get
    while frame is not None:  # agent-replay's own frames
        code = frame.f_code
        hit = kinds(id(code))
        kind = hit[1] if hit is not None else classify(code)
        if kind != OURS:
            break
        frame = frame.f_back
    else:
        return False, None, "?"
    if kind == USER:
        return False, site_of(frame), None
    if kind == INFRA:
        return True, None, None
    fallback: FrameType | None = None
    generated: FrameType | None = None
    library: str | None = None
    steps = _steps.get
    while frame is not None:
        code = frame.f_code
        hit = steps(id(code))
        step = hit[1] if hit is not None else _step(code)
        if step == _LIB:  # most frames: a library's
            if fallback is None:
                fallback = frame
                if library_wanted:
                    library = f"{portable(code.co_filename)}:{frame.f_lineno}"
            frame = frame.f_back
            continue
        if step == _PASS:  # a standard-library frame
            frame = frame.f_back
            continue
        if step == _GEN:  # code made from a string: its caller decides
            if generated is None:
                generated = frame
            frame = frame.f_back
            continue
        if step == _USER:
            return False, site_of(frame), library
        if step == _IMPORT:
            # A library module is being imported: its import-time reads happen
            # once per process, so a replay whose process already imported it
            # would never ask for them again. They are not agent inputs.
            return True, None, None
        if step & _LIB and fallback is None:  # a boundary in a library
            fallback = frame
            if library_wanted:
                library = f"{portable(code.co_filename)}:{frame.f_lineno}"
        break  # a boundary
    if fallback is None and generated is not None:  # nothing above it but plumbing
        return False, site_of(generated), None
    if not library_wanted:
        return False, site_of(fallback) if fallback is not None else None, None
    return False, site_of(fallback) if fallback is not None else None, library or "?"


_PASS, _USER, _IMPORT, _LIB, _STOP, _GEN = 0, 1, 2, 4, 8, 16
"""What :func:`find`'s walk does at a frame of a code object (past agent-replay's own):
go on, stop at a user frame, stop at an import, note a library frame (and go on
unless it is also a boundary), stop at a boundary, note generated code and go on."""
_steps: dict[int, tuple[CodeType, int]] = {}
""":func:`find`'s steps by code object identity (emptied when a boundary is added), so
a frame of the walk costs one dictionary lookup."""


def _step(code: CodeType) -> int:
    kind = classify(code)
    if kind == USER:
        step = _USER
    elif code.co_filename in _IMPORT_FILES:
        step = _IMPORT
    elif kind == GEN:
        step = _GEN | (_STOP if code in BOUNDARIES else 0)
    else:
        step = (_LIB if kind == LIB else _PASS) | (_STOP if code in BOUNDARIES else 0)
    if len(_steps) > 100_000:
        _steps.clear()
    _steps[id(code)] = (code, step)
    return step


_sites: dict[tuple[int, int], tuple[CodeType, CallSite]] = {}
"""By code object *identity* and line: code objects compare equal across files
(the file name takes no part), so they are keyed by id and kept alive here."""


_at: dict[tuple[int, int], tuple[CodeType, CallSite]] = {}
"""The same sites by code object identity and instruction offset (``f_lasti``): a
frame's ``f_lineno`` decodes the code's line table up to the offset, which
costs microseconds in a long function; the offset is read as it is."""


def site_of(frame: FrameType) -> CallSite:
    """The call site of ``frame`` (one shared object per code object and line)."""
    code = frame.f_code
    at = (id(code), frame.f_lasti)
    hit = _at.get(at)
    if hit is not None and hit[0] is code:
        return hit[1]
    line = frame.f_lineno or code.co_firstlineno
    hit = _sites.get((id(code), line))
    if hit is not None and hit[0] is code:
        site = hit[1]
    else:
        if len(_sites) > 100_000:  # code made at run time (exec, lambdas in a loop)
            _sites.clear()
        site = CallSite(code.co_filename, line, code.co_name)
        _sites[(id(code), line)] = (code, site)
    if len(_at) > 100_000:
        _at.clear()
    _at[at] = (code, site)
    return site


def user_frame(frame: FrameType | None) -> FrameType | None:
    """The first user (else library, else generated) frame at or above ``frame``; for
    breakpoints."""
    fallback = generated = None
    while frame is not None:
        kind = classify(frame.f_code)
        if kind == USER:
            return frame
        if kind == LIB and fallback is None:
            fallback = frame
        if kind == GEN and generated is None:
            generated = frame
        if frame.f_code in BOUNDARIES:
            break
        frame = frame.f_back
    return fallback or generated
