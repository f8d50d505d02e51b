"""``verify`` of a packed version 2 cassette, frame by frame at C speed.

The sequential reader (``reader.py``) decodes every record through the
bounded hostile-input :class:`~replay._cassette.decoder.Decoder`, whose
per-list and per-map Python hooks count values. For a packed file whose
trailer and index are intact, :class:`FastFrames` checks each data frame
the index names instead: the frame's zstd units walked as the sequential
reader walks them (headers, window, block sizes, where it ends) and its
CRC32C against the index, one bounded decompression (the content checksum
is zstd's), then each record: its framing and CRC32C, and a msgpack decode
without list/map hooks (``ext_hook`` still resolves every blob reference
and checks every extension). It changes the decoder's state exactly as the
decoder would (blob types, sizes, the bytes held, event offsets), so frames
may go either way in one file.

It only *accepts*: a record whose checks need the value count (near the
budget, or a blob that is not a str or bytes) or that is not an event or a
str/bytes blob goes through ``Decoder.feed`` as it would sequentially, and
on any failure the frame is rolled back and read again by the sequential
reader, which finds the damage and reports it with the offset it always
gives. Each event's index row (seq, channel, task, times, parent, flags)
is compared with its record.
"""

from __future__ import annotations

import concurrent.futures
import io
from typing import Any, Protocol

import crc32c
import msgpack
import zstandard

from replay._cassette import index as ix
from replay._cassette.codec import _BLOB_HEAD, _FRAMING, VALUE_COST
from replay._cassette.decoder import Decoder, _may_hold_timestamp
from replay._cassette.events import Event
from replay._cassette.indexread import IndexScan, Rows
from replay._cassette.layout import _UNIT_MAX, FRAME_RAW, Limits
from replay._cassette.sections import _Damage, _Frame

FAST_FRAME_MAX = 4 * FRAME_RAW
"""Frames that decode to more than this are left to the streaming reader (memory)."""
_WORST = 2 + VALUE_COST
_BLOB_VALUES = 7  # {"k": str, "id": int, "v": str/bytes}: the map, 3 keys, 3 values
_HEAD_LEN = len(_BLOB_HEAD)
_INTS = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
_VALUE_AT = tuple(_HEAD_LEN + 3 if b < 0x80 else _HEAD_LEN + 3 + _INTS[b] if b in _INTS else 0
                  for b in range(256))
"""Where a blob record's value starts, by the first byte of its id (0: not an int)."""
_STR_OR_BIN = frozenset(bytes([b]) for b in [*range(0xA0, 0xC0), 0xD9, 0xDA, 0xDB,
                                             0xC4, 0xC5, 0xC6])


_PLAIN_KEYS = frozenset(("k", "seq", "channel", "request", "start_ns", "duration_ns", "task",
                         "response", "site", "meta"))
"""The keys of the usual event map (no parent, error or chunks): see ``_records``."""
_NO_META: dict[str, Any] = {}
"""``meta``'s stand-in when the map has none (absent is fine, a non-dict is not)."""


class Child(Protocol):
    """A process checking the frames from ``first`` on (``framesplit.Split``)."""

    first: int

    def adopt(self, fast: FastFrames) -> list[tuple[int, int, int]]: ...
    def close(self) -> None: ...


class _Bail(Exception):
    """The fast path will not vouch for this frame: read it sequentially."""


def map_flags(m: dict[Any, Any]) -> int:
    """The index's flag bits of an event map that ``_records`` takes (no error, no chunks)."""
    res = m.get("response")
    if res is None:
        return 0
    f = ix.FLAG_RESPONSE
    if m["channel"] == "http" and type(res) is dict:
        status = res.get("status")
        if type(status) is int and status >= 400:
            f |= ix.FLAG_HTTP_ERROR
    return f


class FastFrames:
    """Checks the data frames of one packed file through its (intact) index.

    A thread reads, walks and decompresses the next frames while this one's
    records are checked (zstd and CRC32C release the GIL): two frames ahead,
    so at most three are in memory.
    """

    def __init__(self, path: str, scan: IndexScan, decoder: Decoder, limits: Limits,
                 rows: Rows) -> None:
        self.scan = scan
        self.decoder = decoder
        self.limits = limits
        self.rows = rows
        self.cap = min(FAST_FRAME_MAX, limits.max_window_size)
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._dctx = zstandard.ZstdDecompressor(max_window_size=limits.max_window_size)
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="verify")
        self._ahead: dict[int, concurrent.futures.Future[bytes | None]] = {}
        self.taken = 0
        """Frames checked here (the others were read sequentially)."""
        self.split: Child | None = None
        """The child process checking the frames from ``split.first`` (``framesplit.py``)."""
        self.stop = len(scan.frames["off"])
        """Frames from here on are not read ahead (another process checks them)."""
        self.demand = 0
        """Most ``held`` before a record plus ``_WORST`` times its length: a bound on every
        check of ``held`` (``framesplit.py``)."""

    def close(self) -> None:
        """Stop reading ahead and the child, and close the file."""
        if self.split is not None:
            self.split.close()
        for fut in self._ahead.values():
            fut.cancel()
        self._pool.shutdown(wait=True)
        self._f.close()

    def adopt(self) -> list[tuple[int, int, int]]:
        """The frames ``split``'s child checked, taken into the decoder (none when its
        report does not hold): (offset, length, stream offset after it) of each."""
        split, self.split, self.stop = self.split, None, len(self.scan.frames["off"])
        return [] if split is None else split.adopt(self)

    def mismatch(self, frames: list[tuple[int, int, int]], end: int, index_at: int) -> str:
        """What differs between the index and the frames read (offset, length, stream
        offset after each), which end at ``end``: "" if nothing."""
        scan, dec = self.scan, self.decoder
        if end != index_at or [(o, ln) for o, ln, _ in frames] != list(
                zip(scan.frames["off"], scan.frames["len"], strict=True)):
            return "frame table does not match the frames"
        if [r for _, _, r in frames[:-1]] != list(scan.frames["raw"][1:]):
            return "frame table's raw offsets do not match the frames"
        if scan.events != dec.events or scan.blobs != len(dec.blobs):
            return (f"index holds {scan.events} events and {scan.blobs} blobs; the file "
                    f"{dec.events} and {len(dec.blobs)}")
        return self.rows.mismatch

    def frame(self, k: int) -> bool:
        """Check data frame ``k`` into the decoder's state: True, or False with the
        state as it was (read the frame sequentially)."""
        for j in range(k, max(k + 1, min(k + 3, self.stop))):
            if j not in self._ahead:
                self._ahead[j] = self._pool.submit(self._data, j)
        data = self._ahead.pop(k).result()
        if data is None:
            return False
        dec = self.decoder
        mark = (len(dec.blobs), dec.held, dec.events, len(dec.event_pos), dec.done)
        try:
            self._records(data)
        except _Bail:
            nb, dec.held, dec.events, npos, dec.done = mark
            for value in dec.blobs[nb:]:
                dec._checked.discard(id(value))
            del dec.blobs[nb:]
            del dec._sizes[nb:]
            del dec.event_pos[npos:]
            dec.end = None
            dec._buf = bytearray()
            self.rows.drop()
            return False
        self.taken += 1
        return True

    def _data(self, k: int) -> bytes | None:
        """Frame ``k``'s decompressed bytes, once its units, CRC and size check out;
        None when they do not (runs in the read-ahead thread)."""
        fr = self.scan.frames
        off, ln, crc, rl = fr["off"][k], fr["len"][k], fr["crc"][k], fr["rawlen"][k]
        if rl > self.cap:
            return None
        self._f.seek(off)
        z = self._f.read(ln)
        walk = _Frame(io.BytesIO(z), off, self.limits)
        try:
            while walk.read(_UNIT_MAX):
                pass
        except _Damage:
            return None
        if not walk.done or walk.pos != off + ln or walk.crc != crc or len(z) != ln:
            return None
        try:
            if zstandard.frame_content_size(z) != rl:
                return None
            data = self._dctx.decompress(z, max_output_size=rl)
        except zstandard.ZstdError:
            return None
        return data if len(data) == rl else None

    def _records(self, data: bytes) -> None:
        """Every record of one frame, as ``Decoder.feed`` would take them, inline
        (no call per record; ``held`` and ``events`` are the decoder's, kept in
        locals and written back before the decoder sees any record).

        A ``{"k": "blob", "id": N, "v": str or bytes}`` record as the writer packs
        it (a map of exactly those 3 keys, so no other value hides in it) is checked
        and taken here; any other blob goes to the decoder. An event is taken here
        when ``Event.from_map`` certainly accepts its map (the usual shape: no
        error, no chunks, exact types, each value looked up once); any other goes
        through ``Event.from_map``.
        """
        dec = self.decoder
        got = self.rows.got
        add_row = got.append
        unpack = _FRAMING.unpack_from
        unpackb = msgpack.unpackb
        crc32 = crc32c.crc32c
        budget, max_values, max_len = dec.budget, dec._max_values, dec._max
        blobs, sizes = dec.blobs, dec._sizes
        add_blob, add_size = blobs.append, sizes.append
        slow_ext = dec._ext
        value_at, blob_head, head_len, str_or_bin = _VALUE_AT, _BLOB_HEAD, _HEAD_LEN, _STR_OR_BIN
        blob_cost, ev_cost = VALUE_COST * _BLOB_VALUES, VALUE_COST + 1
        plain_keys = _PLAIN_KEYS

        first = getattr(dec, "foreign", 0)  # the id of blobs[0]: framesplit.py's child

        def ext(code: int, data: bytes) -> Any:
            if code == 1 and len(data) in (1, 2, 4, 8):
                ident = int.from_bytes(data, "big") - first
                if 0 <= ident < len(blobs):
                    dec._expanded += sizes[ident]
                    return blobs[ident]
            return slow_ext(code, data)  # anything else: the decoder's own checks

        add_pos = dec.event_pos.append
        no_parent, flag_response = ix.NO_PARENT, ix.FLAG_RESPONSE
        base = dec.done
        held = dec.held
        ended = dec.end is not None
        events = dec.events
        demand = self.demand
        i, n = 0, len(data)
        while i < n:
            if n - i < 8:
                raise _Bail  # the frame ends inside a record
            length, crc = unpack(data, i)
            stop = i + 8 + length
            if length > max_len or stop > n:
                raise _Bail
            asks = held + _WORST * length
            if asks > demand:
                demand = asks
            if length > max_values or asks > budget or ended:
                dec.held, dec.events, dec.done = held, events, base + i
                self._feed(data[i:stop])  # the decoder counts its values
                held, events, ended = dec.held, dec.events, dec.end is not None
                i = stop
                continue
            payload = data[i + 8:stop]
            if crc32(payload) != crc:
                raise _Bail
            if payload.startswith(blob_head):  # as _blob, inline
                j = value_at[payload[head_len]] if length > head_len else 0
                b: Any = None
                if j and payload[j - 2:j] == b"\xa1v" and payload[j:j + 1] in str_or_bin:
                    try:  # a str or bin value: no extension; msgpack checks the UTF-8
                        b = unpackb(payload, raw=False)
                    except Exception:
                        b = None
                if b is not None and b["id"] == first + len(blobs) \
                        and length + blob_cost <= budget and held + VALUE_COST <= budget:
                    held += VALUE_COST
                    add_blob("" if type(b["v"]) is str else b"")
                    add_size(length + blob_cost)
                else:
                    dec.held, dec.events, dec.done = held, events, base + i
                    self._feed(data[i:stop])
                    held, events, ended = dec.held, dec.events, dec.end is not None
                i = stop
                continue
            dec._expanded = 0
            try:
                m = unpackb(payload, raw=False, strict_map_key=False, ext_hook=ext)
                if payload.find(b"\xff") >= 0 and _may_hold_timestamp(data, i + 8, stop):
                    dec._reject_foreign(m)
            except Exception:
                raise _Bail from None
            if type(m) is not dict or m.get("k") != "ev" \
                    or ev_cost * length + dec._expanded > budget:
                dec.held, dec.events, dec.done = held, events, base + i
                self._feed(data[i:stop])  # the end record, or a count that matters
                held, events, ended = dec.held, dec.events, dec.end is not None
                i = stop
                continue
            if m.keys() == plain_keys:  # what the recorder writes: subscripts, no .get
                seq, start, dur, chan, task = (m["seq"], m["start_ns"], m["duration_ns"],
                                               m["channel"], m["task"])
                site, meta, res = m["site"], m["meta"], m["response"]
                if type(seq) is int and type(start) is int and type(dur) is int \
                        and type(chan) is str and type(task) is str and type(site) is list \
                        and len(site) == 3 and type(site[0]) is str \
                        and type(site[1]) is int and type(site[2]) is str \
                        and type(meta) is dict:
                    add_row((seq, start, dur, no_parent,
                             0 if res is None else flag_response if type(res) is not dict
                             else map_flags(m), chan, task))
                    events += 1
                    add_pos(base + i)
                    i = stop
                    continue
            # plain_event(m), inline: the usual shape, exact types, no error, no chunks
            seq, start, dur = m.get("seq"), m.get("start_ns"), m.get("duration_ns")
            chan, task = m.get("channel"), m.get("task")
            site, parent = m.get("site", m), m.get("parent")
            meta = m.get("meta", _NO_META)
            if type(seq) is int and type(start) is int and type(dur) is int \
                    and type(chan) is str and type(task) is str and "request" in m \
                    and "error" not in m and "chunks" not in m \
                    and (site is m or (type(site) is list and len(site) == 3
                                       and type(site[0]) is str and type(site[1]) is int
                                       and type(site[2]) is str)) \
                    and (parent is None or type(parent) is int) and type(meta) is dict:
                res = m.get("response")
                add_row((seq, start, dur, no_parent if parent is None else parent,
                         0 if res is None else flag_response if type(res) is not dict
                         else map_flags(m), chan, task))
            else:
                try:
                    self.rows.add_event(Event.from_map(m))
                except (ValueError, TypeError):
                    raise _Bail from None
            events += 1
            add_pos(base + i)
            i = stop
        dec.held, dec.events, dec.done = held, events, base + n
        self.demand = demand

    def _feed(self, record: bytes) -> None:
        """One record through the decoder, exactly as the sequential reader takes it."""
        got: list[Event] = []
        try:
            self.decoder.feed(record, got)
        except ValueError:  # OverLimitError and DecodeError among them
            raise _Bail from None
        for ev in got:
            self.rows.add_event(ev)
