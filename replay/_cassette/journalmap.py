"""The memory map a version 2 journal is written through, and who may write to it.

The journal file is grown ahead in steps with ``posix_fallocate`` (so a full
disk is an error at the step, never a SIGBUS at a store), the step then written
with zeros (:func:`_fill`), and mapped ``MAP_SHARED``: a record copied into the
map is in the kernel's page cache, as with ``write()``, and survives SIGKILL.
The zeros are written because the first store to a page of the map that is
not yet in the page cache takes a fault that brings it in (on ext4, for space
``posix_fallocate`` left unwritten, also the file system's write-fault work):
~0.5 us of CPU per 700-byte record copied into a fresh mapping, against ~0.1 us
into pages that one ``pwrite`` per 256 KiB of zeros brought in beforehand, that
write included (~2 ms per 16 MiB step, all at the step's event). The unwritten rest of the last step
stays zero bytes until the writer cuts the file to its records
(docs/cassette-format.md, "The zero tail"). Where mapping is not possible (a
32-bit build, no ``posix_fallocate``, a file system that refuses, a step
that fails) the writer appends with ``write()`` instead.

A map belongs to the process that made it: :func:`track` registers a writer
whose ``forked()`` a child forked while it is open calls (``os.register_at_fork``).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import mmap
import os
import sys
import weakref
from typing import Protocol

from replay._cassette.layout import _HEAD, _U32, JOURNAL_TAG, MAGIC

MAP_AFTER = 1 << 16
"""A journal is appended with ``write()`` until its records pass this many bytes, then
mapped: mapping, growing and cutting cost ~0.1-0.2 ms a run, which the copies win
back only after a few hundred events."""
MAP_FIRST = 1 << 16
"""Bytes the journal's first mapping holds past the header."""
MAP_STEP_MAX = 1 << 24
"""The mapping grows by its own size (doubling), at most this much at a time."""
MAPPED = (sys.maxsize > 2**32 and hasattr(os, "posix_fallocate")
          and hasattr(mmap, "MAP_SHARED"))
"""Whether journals are memory-mapped on this platform (64-bit, ``posix_fallocate``)."""


def open_map(fd: int, base: int) -> mmap.mmap | None:
    """Map the file ``fd`` (``base`` bytes written so far), ``MAP_FIRST`` bytes past
    them ahead; None (and the file as it was) when it cannot be."""
    if not MAPPED:
        return None
    try:
        os.posix_fallocate(fd, base, MAP_FIRST)
        _fill(fd, base, MAP_FIRST)
        m = mmap.mmap(fd, base + MAP_FIRST, flags=mmap.MAP_SHARED,
                      prot=mmap.PROT_READ | mmap.PROT_WRITE)
    except (OSError, ValueError, OverflowError):
        os.ftruncate(fd, base)
        return None
    return m


def grow(m: mmap.mmap, fd: int, least: int, written: int) -> bool:
    """Grow ``m`` (of file ``fd``) to at least ``least`` bytes; False when it cannot
    (the caller unmaps and goes on with ``write()``).

    The pages before ``written`` (the file's bytes already holding records) are
    first given back (``MADV_DONTNEED``): a shared file mapping's pages stay in
    the page cache and the file, but no longer count in the process's memory,
    so a writer's resident size stays bounded by one growth step instead of
    growing with the journal (a million-event run mapped whole held ~700 MB)."""
    release(m, written)
    size = len(m)
    new = max(least, size + min(size, MAP_STEP_MAX))
    try:
        os.posix_fallocate(fd, size, new - size)  # ENOSPC here, not a SIGBUS later
        _fill(fd, size, new - size)
        m.resize(new)
    except (OSError, ValueError, SystemError, BufferError):
        return False
    return True


_ZEROS = 1 << 18
"""Bytes of zeros :func:`_fill` writes at a time."""


@functools.cache
def _zeros() -> memoryview:
    return memoryview(bytes(_ZEROS))


def _fill(fd: int, at: int, size: int) -> None:
    """Write zeros over the ``size`` bytes of file ``fd`` from offset ``at`` (allocated,
    past its records): their pages come into the page cache as written data, so the
    map's stores to them take no conversion fault (see the module docstring).
    Nothing for a file opened for appending, where ``pwrite`` would append."""
    if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND:
        return
    zeros = _zeros()
    end = at + size
    while at < end:
        at += os.pwrite(fd, zeros[:min(end - at, _ZEROS)], at)


def release(m: mmap.mmap, written: int) -> None:
    """Give back the whole pages of ``m`` before offset ``written`` (see :func:`grow`);
    nothing where the platform has no ``madvise``."""
    end = written - written % mmap.PAGESIZE
    if end > 0 and _DONTNEED is not None:
        with contextlib.suppress(OSError, ValueError):
            m.madvise(_DONTNEED, 0, end)


_DONTNEED: int | None = getattr(mmap, "MADV_DONTNEED", None)


def cut(m: mmap.mmap, fd: int, size: int) -> None:
    """Unmap ``m`` and cut its file ``fd`` to ``size`` bytes (its records), the file's
    offset at the end."""
    m.close()
    os.ftruncate(fd, size)
    os.lseek(fd, 0, os.SEEK_END)


class Owned(Protocol):
    """A writer that a forked child must stop using."""

    def forked(self) -> None:
        """Called in the child: forget the parent's file without touching it."""


_OPEN: weakref.WeakSet[Owned] = weakref.WeakSet()


def track(writer: Owned) -> None:
    """Register an open writer (until :func:`untrack` or its collection)."""
    _OPEN.add(writer)


def untrack(writer: Owned) -> None:
    """The writer is closed: forks need not know it any more."""
    _OPEN.discard(writer)


def _after_fork() -> None:
    for w in list(_OPEN):
        w.forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def fsync_dir(path: str) -> None:
    """Make a rename to ``path`` durable: fsync the folder holding it, where the OS
    lets us open a directory."""
    with contextlib.suppress(OSError):
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def cut_zero_tail(path: str) -> int:
    """Cut the zero tail a killed writer left on the journal at ``path``: walk its
    record framings to the first zero one and, when every byte from there on is
    zero, truncate the file there (a crashed run's leftover is stored or uploaded
    without megabytes of zeros). Any other file (not a journal, no zero framing,
    other bytes after it) is left as it is. Returns the file's size."""
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        magic, _, n = _HEAD.unpack(f.read(_HEAD.size).ljust(_HEAD.size, b"\0"))
        at = _HEAD.size + int(n) + 4
        f.seek(at)
        if magic != MAGIC or f.read(4) != JOURNAL_TAG:
            return size
        at += 4
        while at + 8 <= size:
            f.seek(at)
            framing = f.read(8)
            if framing == bytes(8):
                while chunk := f.read(1 << 20):
                    if chunk.count(0) != len(chunk):
                        return size
                f.truncate(at)
                return at
            at += 8 + int(_U32.unpack_from(framing)[0])
    return size
