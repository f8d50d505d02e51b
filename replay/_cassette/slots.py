"""Journal slots and header bytes: what a service's many short runs share.

A :class:`Slot` is a journal file (``slot-N.replay.partial`` in a process's
spool) kept open, in append mode, for run after run: a run writes its header
and records into it, and when the run is dropped or packed the slot is
emptied (one ``ftruncate`` to nothing) and goes back to its :class:`SlotPool`
for the next run. An empty journal is no run (crash recovery skips it), so
what one run wrote never reaches another's cassette: the slot is empty before
it is taken again. Reuse spares an ``open``, a ``close`` and the file
system's create and delete per run. A slot is never memory-mapped (as a
long journal is): for a run of a few events a map per run, and emptying it
(an ftruncate that waits for the mapped pages), cost ~0.2 ms of CPU and 4-8
ms of wall time a run on ext4, more than the copies save.

A :class:`HeaderTemplate` encodes the header section of run after run from
one constant part (argv, Python, platform, the context fingerprint: taken and
redacted once), so a run encodes only its creation time and its own metadata;
:func:`encode_header` encodes a whole one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

import crc32c

from replay._cassette.codec import pack_plain
from replay._cassette.layout import _HEAD, _U32, FORMAT_VERSION, MAGIC, Header
from replay._cassette.redact import RULES_MARK, RULES_VERSION, Redactor

_FLAGS = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


class Slot:
    """A journal file kept open for run after run (see the module docstring)."""

    __slots__ = ("fd", "path", "pid")

    def __init__(self, path: str) -> None:
        self.path = path
        """The file."""
        self.pid = os.getpid()
        """The process that made it (a forked child leaves its parent's slots alone)."""
        self.fd = os.open(path, _FLAGS, 0o666)
        """Its descriptor, opened for appending (each ``write()`` lands at the end, so
        an emptied slot is written from its start again without a seek)."""

    def begin(self, head: bytes) -> None:
        """Write a run's first bytes (its header) into the empty slot; should that
        fail, no torn header is left for the next run."""
        try:
            write_all(self.fd, head)
        except BaseException:
            self.empty()
            raise

    def empty(self) -> None:
        """Cut the file to nothing: the run in it is gone, the slot free for the next."""
        os.ftruncate(self.fd, 0)

    def close(self) -> None:
        """Close the descriptor (the file stays)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


def write_all(fd: int, out: bytes | bytearray) -> None:
    """One ``write()`` of ``out`` (more only if the OS writes less)."""
    done = os.write(fd, out)
    if done < len(out):
        view = memoryview(out)[done:]
        while view:
            view = view[os.write(fd, view):]


class SlotPool:
    """The free slots of a recorder, by folder: an emptied slot goes back, a run takes
    one (or a new one is made: as many exist as runs ever recorded at once). In a
    child forked from the recorder's process, the parent's slots are not the
    child's: they are never taken or deleted there (the child records into its
    own spool, as the store makes one per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: dict[str, list[Slot]] = {}
        self._made = 0

    def take(self, folder: str) -> Slot:
        """A free, empty slot in ``folder``."""
        pid = os.getpid()
        with self._lock:
            free = self._free.get(folder)
            while free:
                slot = free.pop()
                if slot.pid == pid:
                    return slot
                slot.close()  # the child's copy of its parent's descriptor
            self._made += 1
            n = self._made
        return Slot(os.path.join(folder, f"slot-{n}.replay.partial"))

    def give(self, slot: Slot) -> None:
        """Take ``slot`` back; it must be empty (a dropped or packed run's)."""
        with self._lock:
            self._free.setdefault(os.path.dirname(slot.path), []).append(slot)

    def close(self) -> None:
        """Close and delete the free slots (those in use stay with their runs)."""
        with self._lock:
            free = [s for slots in self._free.values() for s in slots]
            self._free.clear()
        pid = os.getpid()
        for slot in free:
            slot.close()
            if slot.pid == pid:
                try:
                    os.unlink(slot.path)
                except FileNotFoundError:
                    pass


def encode_header(header: Header, limit: int = 1024 * 1024, *,
                  version: int = FORMAT_VERSION) -> bytes:
    """The header section's bytes (magic to CRC) for ``header``."""
    return _section(pack_plain(header.to_map()), limit, version)


def _section(body: bytes, limit: int, version: int) -> bytes:
    if len(body) > limit:
        raise ValueError(f"header map of {len(body)} bytes exceeds {limit}")
    head = _HEAD.pack(MAGIC, version, len(body))
    return head + body + _U32.pack(crc32c.crc32c(body, crc32c.crc32c(head[8:])))


def _pairs(m: Mapping[str, Any]) -> bytes:
    """The encoded key-value pairs of the map ``m`` (its encoding without the map's
    own head): one encoding call for the whole map."""
    packed = pack_plain(dict(m))
    first = packed[0]
    return packed[1 if first < 0xde else 3 if first == 0xde else 5:]


def _map_head(n: int) -> bytes:
    if n < 16:
        return bytes((0x80 | n,))
    if n < 1 << 16:
        return b"\xde" + n.to_bytes(2, "big")
    return b"\xdf" + n.to_bytes(4, "big")


class HeaderTemplate:
    """The header section (magic to CRC) of run after run with the same constant part.

    ``base``: argv, Python, platform and the metadata every run has, already
    redacted by ``redactor`` (:func:`~replay._runs.headers.header_base`). Per
    run, :meth:`encode` redacts and encodes only the run's own metadata; the
    bytes decode to the header ``encode_header`` writes for
    ``Header(created, base.argv, base.python, base.platform, {**base.meta,
    **redactor.meta(meta)})``.
    """

    def __init__(self, base: Header, redactor: Redactor, *,
                 version: int = FORMAT_VERSION) -> None:
        self.base = base
        """The constant part."""
        self.redactor = redactor
        """What each run's own metadata is redacted by."""
        self.version = version
        self._keys = frozenset(base.meta)
        self._front = _map_head(5) + pack_plain("created")
        self._middle = b"".join((
            pack_plain("argv"), pack_plain(list(base.argv)), pack_plain("python"),
            pack_plain(base.python), pack_plain("platform"), pack_plain(base.platform),
            pack_plain("meta")))
        self._pairs = {k: pack_plain(k) + pack_plain(v) for k, v in base.meta.items()}
        self._all = b"".join(self._pairs.values())

    def encode(self, created: str, meta: Mapping[str, Any]) -> bytes:
        """The header section of a run created at ``created`` (an ISO time made by
        this package: no secret in it) with its own metadata ``meta``, redacted here:
        one scan of its encoding when it is clean (:meth:`Redactor.clean`), else
        :meth:`Redactor.value` as for any header."""
        own = {k: v for k, v in meta.items() if k != RULES_MARK}
        red = self.redactor
        packed = _pairs(own)
        if not red.clean(packed, own):
            own = red.value(own)
            packed = _pairs(own)
        meta_map = self._all
        keys = len(self._pairs) + len(own)
        if self._keys.intersection(own):  # {**base, **own}: the base's place, the run's value
            merged = {**self.base.meta, **own}
            meta_map, keys, packed = _pairs(merged), len(merged), b""
        if red.covers_defaults and RULES_MARK not in self._keys:
            packed += pack_plain(RULES_MARK) + pack_plain(RULES_VERSION)
            keys += 1
        body = b"".join((self._front, pack_plain(created), self._middle,
                         _map_head(keys), meta_map, packed))
        return _section(body, 1024 * 1024, self.version)
