"""The constant parts of the records the writer's short paths write (issue 16).

A value read (``time.time()``) or a tool call from one line of one task writes
the same record again and again but for a few values; a shape holds the rest,
encoded once, so :meth:`CassetteWriter.write_value` and
:meth:`CassetteWriter.write_call` fill in the values between its pieces and
write the bytes :meth:`CassetteWriter.write` would encode for the same
:class:`~replay._cassette.events.Event`, without building it.
"""

from __future__ import annotations

from replay._cassette.codec import BLOB_MIN_SIZE, pack_plain
from replay._cassette.events import CallSite, Value

_LONGEST_SCALAR = 9  # a msgpack int or float is at most 9 bytes


def value_pieces(channel: str, request: Value, task: str,
                 site: CallSite) -> tuple[bytes, bytes, bytes, bytes, bytes] | None:
    """:class:`ValueShape`'s bytes (``head``, ``mid``, ``dur_key``, ``tail``, ``site``)
    for value reads on ``channel`` with ``request`` of ``task`` at ``site``; None when
    they cannot be encoded, or the record could hold a blob (``write()`` looks)."""
    p = pack_plain
    try:
        head = b"\x89" + p("k") + p("ev") + p("seq")
        mid = p("channel") + p(channel) + p("request") + p(request) + p("start_ns")
        tail = p("task") + p(task) + p("response")
        where = p("site") + p([site.file, site.line, site.function])
    except (ValueError, TypeError):
        return None
    dur_key = p("duration_ns")
    size = len(head) + len(mid) + len(dur_key) + len(tail) + len(where)
    if size + 4 * _LONGEST_SCALAR >= BLOB_MIN_SIZE:
        return None
    return head, mid, dur_key, tail, where


class ValueShape:
    """The constant bytes of the ``ev`` records of one kind of value read.

    A clock or random read (``time.time()`` at one line of one task) writes the
    same record again and again but for ``seq``, ``start_ns``, ``duration_ns``
    and the value; :meth:`CassetteWriter.write_value` fills those in between
    these pieces, so the record is byte for byte what ``write`` would encode
    for the same :class:`Event` (the map in ``Event.to_map`` order), without
    building the event. Made by :meth:`CassetteWriter.value_shape`.
    """

    __slots__ = ("dur_key", "head", "mid", "row", "site", "tail")

    def __init__(self, head: bytes, mid: bytes, dur_key: bytes, tail: bytes, site: bytes,
                 row: bytes) -> None:
        self.head = head
        """Map header, ``"k": "ev"`` and the ``seq`` key."""
        self.mid = mid
        """``channel`` and ``request`` with their keys, and the ``start_ns`` key."""
        self.dur_key = dur_key
        """The ``duration_ns`` key."""
        self.tail = tail
        """``task`` with its key, and the ``response`` key."""
        self.site = site
        """``site`` with its key."""
        self.row = row
        """The index row's constant fields (no parent, channel, task, flags), packed."""


K_SEQ = pack_plain("k") + pack_plain("ev") + pack_plain("seq")
START = pack_plain("start_ns")
DURATION = pack_plain("duration_ns")
RESPONSE = pack_plain("response")
PARENT = pack_plain("parent")
MAP_HEADS = tuple(bytes((0x80 | n,)) for n in range(16))  # msgpack fixmap headers


class CallShape:
    """The constant bytes of the ``ev`` records of one tool's calls from one line of one
    task: what :meth:`CassetteWriter.write_call` needs besides the call's own values.
    Made by :meth:`CassetteWriter.call_shape`."""

    __slots__ = ("chan", "clear", "end", "heads", "keys", "meta", "mid", "site", "task",
                 "task_id", "task_res")

    def __init__(self, keys: int, mid: bytes, task: bytes, site: bytes, meta: bytes,
                 chan: int, task_id: int, clear: set[str] | None = None) -> None:
        self.keys = keys
        """Keys of the record map with no ``response`` and no ``parent``."""
        self.mid = mid
        """``channel`` with its key, and the ``request`` key."""
        self.task = task
        """``task`` with its key."""
        self.task_res = task + RESPONSE
        """``task`` with its key, then the ``response`` key."""
        self.heads = tuple(MAP_HEADS[keys + more] + K_SEQ for more in range(3))
        """The map header and ``"k": "ev"``, ``seq`` key, by how many keys there are
        beyond ``keys`` (``response``, ``parent``): fewer pieces for ``write_call``'s join."""
        self.site = site
        """``site`` with its key."""
        self.meta = meta
        """``meta`` (redacted) with its key, or nothing when it is empty."""
        self.end = site + meta
        """The record's end when it has no ``parent``: ``site`` then ``meta``."""
        self.chan = chan
        """The index's channel number."""
        self.task_id = task_id
        """The index's task number."""
        self.clear = clear
        """The writer's redactor's cache of the map keys it leaves as they are (its
        ``_clear``), given when it leaves ``"args"`` and every parameter name of the
        tool as they are (verdicts never change): then a flat request
        (:meth:`CassetteWriter.write_call`) needs no look at its keys, nor a result map
        whose keys the set holds. None: no such promise."""
