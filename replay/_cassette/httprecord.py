"""The short path of a recorded HTTP exchange (issue 16): :func:`write_http`.

What ``CassetteWriter.write`` does for an ``http`` event (redaction, encoding with
blobs, framing, the index row, one append), done from the exchange's parts
without building the :class:`~replay._cassette.events.Event`, its ``to_map`` and
the redactor's copy of it: each part is packed once, and those bytes serve both
the secret scan and the record. The record bytes are those ``write`` makes of the
same event, byte for byte (tests/test_httprecord.py), blobs and de-duplication
included (the encoder's own walk and blob table are used for anything that can
hold a blob).

Redaction: a request's header map (a str-to-str map: an SDK's, its key in
``Authorization``) is redacted by :meth:`Redactor.value` and packed once per
distinct map, remembered by the redactor; the body is masked as
:meth:`Redactor.chunks` masks it (the full secret scan only when the yes/no scan
finds an anchor, such as the ``_tokens`` of a model's usage); the other parts
are scanned once (:meth:`Redactor.clean`, as ``Redactor._http_clean`` does for
``write``), the URL's verdict taken from the redactor's cache. When that scan
finds an anchor, or the headers are not a str-to-str map, the parts are redacted
field by field as ``Redactor.__call__`` redacts the event, and packed again.
When anything is unusual (a URL to redact, an error, a request not in the
recorder's form, a record past the reader's value-count
check), nothing is written and :func:`write_http` returns False: the caller
writes the event through ``write``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import crc32c

from replay._cassette import index as ix
from replay._cassette.codec import (
    _BLOB_HEAD,
    _BLOB_VALUE,
    _FRAMING,
    BLOB_MIN_SIZE,
    CHUNK_BLOB_MIN_SIZE,
    DEFAULT_MAX_VALUES,
    pack_plain,
)
from replay._cassette.events import CallSite, Value
from replay._cassette.redact import _SAME, Redactor

if TYPE_CHECKING:
    from replay._cassette.writer import CassetteWriter

_crc = crc32c.crc32c
_frame = _FRAMING.pack
_p = pack_plain

_REQ_KEYS: Final = ("method", "url", "body", "headers")
_K_SEQ: Final = _p("k") + _p("ev") + _p("seq")
_CHANNEL: Final = _p("channel") + _p("http") + _p("request")
_START: Final = _p("start_ns")
_DURATION: Final = _p("duration_ns")
_TASK: Final = _p("task")
_RESPONSE: Final = _p("response")
_SITE: Final = _p("site")
_CHUNKS: Final = _p("chunks")
_PARENT: Final = _p("parent")
_META: Final = _p("meta")
_PAIR: Final = b"\x92"  # a chunk's [data, at_ns]
_ROW: Final = ix._ROW  # an index row, as Batch.add_row packs it
_ROWS_FULL: Final = ix.BATCH * len(ix.EVENT_COLUMNS)  # a full batch's length of Batch.rows
_BYTES: Final = frozenset({bytes})
_blake2b = hashlib.blake2b


def _map_head(n: int) -> bytes:
    return bytes((0x80 | n,))


def _array_head(n: int) -> bytes:
    return bytes((0x90 | n,)) if n < 16 else b"\xdc" + n.to_bytes(2, "big") if n < 0x10000 \
        else b"\xdd" + n.to_bytes(4, "big")


_sites: dict[int, tuple[CallSite, bytes]] = {}


def _site_bytes(site: CallSite) -> bytes:
    """``site`` with its key, packed (cached by the shared site object)."""
    hit = _sites.get(id(site))
    if hit is not None and hit[0] is site:
        return hit[1]
    data = _SITE + _p([site.file, site.line, site.function])
    if len(_sites) > 100_000:
        _sites.clear()
    _sites[id(site)] = (site, data)
    return data


_LEAVES: Final = frozenset({str, bytes, int, float, bool, type(None)})


def _clean(red: Redactor, scanned: bytes, body: Value, headers: Value,
           response: dict[str, Value], meta: dict[str, Value]) -> bool:
    """True when ``red`` would leave the exchange as it is: what ``red.clean(scanned,
    method, body, headers, response, meta)`` answers, the response's header list
    checked by its names' cached verdicts (``red.header_pair``) rather than walked
    pair by pair. ``scanned`` holds every str and bytes of the parts verbatim."""
    if not red.quiet(scanned):
        return False
    plain = red._plain
    for v in (body, headers, meta):
        if type(v) not in _LEAVES and not plain(v):
            return False
    clear: set[str] = red._clear  # type: ignore[attr-defined]
    if not clear.issuperset(response):
        return plain(response)
    names: set[str] | None = red.__dict__.get("_http_names")
    if names is None:
        names = set()
        object.__setattr__(red, "_http_names", names)
    for x in response.values():
        if type(x) in _LEAVES:
            continue
        if type(x) is list and len(x) != 2:  # a header list (two items: see _plain)
            for pair in x:
                if not (type(pair) is list and len(pair) == 2 and type(pair[1]) is str
                        and type(name := pair[0]) is str):
                    if not plain(pair):
                        return False
                elif name not in names:
                    if red.header_pair(pair):
                        return False
                    if len(names) > 4096:
                        names.clear()
                    names.add(name)
        elif not plain(x):
            return False
    return True


def _redacted(red: Redactor, request: dict[str, Value], response: dict[str, Value],
              datas: Sequence[bytes], meta: dict[str, Value]) -> tuple[
                  Any, Any, Sequence[bytes], dict[str, Value]]:
    """The parts as ``red(event)`` leaves the event they make (an ``http`` event with
    no error and no callback): request and response by :meth:`Redactor.value`, the
    body masked across its chunks (:meth:`Redactor.chunks`: each keeps its size),
    meta by :meth:`Redactor.value` of a copy."""
    if datas:
        joined = datas[0] if len(datas) == 1 else b"".join(datas)
        masked = red.data(joined)
        if masked is not joined and masked != joined:
            cut: list[bytes] = []
            pos = 0
            for d in datas:
                cut.append(masked[pos:pos + len(d)])
                pos += len(d)
            datas = cut
    if meta:
        redacted = red.value(dict(meta))
        if redacted != meta:
            meta = redacted
    return red.value(request), red.value(response), datas, meta


_STRS: Final = frozenset({str})
_HEADS_MAX: Final = 512  # distinct request header maps remembered per redactor


def _headers(red: Redactor, headers: Value, pack: Any) -> tuple[Value, bytes] | None:
    """A request's header map as ``red.value`` leaves it, and packed; None when it is
    not a map of str to str. Remembered by content: a client sends the same headers
    (its key in ``Authorization`` among them) call after call, so the map is
    redacted and packed once, not walked in every event."""
    if type(headers) is not dict or not (_STRS.issuperset(map(type, headers))
                                         and _STRS.issuperset(map(type, headers.values()))):
        return None
    seen: dict[tuple[tuple[str, Value], ...], tuple[Value, bytes]] | None = \
        red.__dict__.get("_http_heads")
    if seen is None:
        seen = {}
        object.__setattr__(red, "_http_heads", seen)
    key = tuple(headers.items())
    hit = seen.get(key)
    if hit is None:
        out = red.value(headers)
        hit = (None if out is headers or out == headers else out, pack(out))
        if len(seen) >= _HEADS_MAX:
            seen.clear()
        seen[key] = hit
    return hit if hit[0] is not None else (headers, hit[1])


def _body(red: Redactor, datas: Sequence[bytes]) -> Sequence[bytes]:
    """The body's chunks masked across their boundaries, each keeping its size
    (:meth:`Redactor.chunks`, as :func:`_redacted` does); ``datas`` itself when clean."""
    if not datas:
        return datas
    joined = datas[0] if len(datas) == 1 else b"".join(datas)
    if red.quiet(joined):
        return datas
    masked = red.data(joined)
    if masked is joined or masked == joined:
        return datas
    cut: list[bytes] = []
    pos = 0
    for d in datas:
        cut.append(masked[pos:pos + len(d)])
        pos += len(d)
    return cut


def write_http(writer: CassetteWriter, seq: int, start_ns: int, duration_ns: int, task: str,
               site: CallSite | None, parent: int | None, request: Value, response: Value,
               datas: Sequence[bytes], times: Sequence[int], meta: dict[str, Value]) -> bool:
    """Append the ``http`` event made of these parts (``datas[i]`` arrived ``times[i]`` ns
    after the start) as ``writer.write`` would, redacted as it redacts: True, and
    durable against SIGKILL on return. False: nothing was written; the caller
    writes the event with ``write``.

    The parts are read, never changed; ``writer`` must write a journal with the
    default redactor, or none (:attr:`CassetteWriter.writes_values`).
    """
    if (type(request) is not dict or tuple(request) != _REQ_KEYS or type(response) is not dict
            or not writer.writes_values or not _BYTES.issuperset(map(type, datas))):
        return False
    red = writer._redactor
    url = request["url"]
    if red is not None and (type(url) is not str or (
            red._texts.get(url) is not _SAME and red.text(url) is not url)):  # type: ignore[attr-defined]
        return False
    method = request["method"]
    body = request["body"]
    headers = request["headers"]
    with writer._lock:
        if writer._stopped:
            raise ValueError(f"write to a closed CassetteWriter ({writer.partial_path})")
        enc = writer._encoder
        pack = enc.packer.pack
        try:
            heads = _headers(red, headers, pack) if red is not None else None
            method_b, body_b, res_b = pack(method), pack(body), pack(response)
            meta_b = pack(meta) if meta else b""
            if heads is not None and _clean(red, b"".join((method_b, body_b, res_b, meta_b)),  # type: ignore[arg-type]
                                            body, None, response, meta):
                # the usual model call: its headers redacted as before (cached by content),
                # its body masked as Redactor.chunks masks it, the rest left as it is
                red_heads, head_b = heads
                datas = _body(red, datas)  # type: ignore[arg-type]
                if red_heads is not headers:
                    request = {**request, "headers": red_heads}
            elif red is not None and not _clean(
                    red, b"".join((method_b, body_b, head_b := pack(headers), res_b, meta_b,
                                   *datas)), body, headers, response, meta):
                # maybe a secret (an SDK's Authorization header, a body's "_tokens"):
                # redacted here as Redactor.__call__ redacts the event, then packed again
                request, response, datas, meta = _redacted(red, request, response, datas,
                                                           meta)
                if (type(request) is not dict or tuple(request) != _REQ_KEYS
                        or request["url"] is not url or type(response) is not dict):
                    return False  # a key renamed, or not what this packs: write() decides
                method, body, headers = request["method"], request["body"], request["headers"]
                method_b, body_b, head_b, res_b = pack(method), pack(body), pack(headers), pack(
                    response)
                meta_b = pack(meta) if meta else b""
            elif red is None:
                head_b = pack(headers)
            req_b = b"".join((b"\x84\xa6method", method_b, b"\xa3url", pack(url), b"\xa4body",
                              body_b, b"\xa7headers", head_b))
            payloads = _encode(enc, seq, start_ns, duration_ns, task, site, parent, request,
                               req_b, response, res_b, datas, times, meta, meta_b)
        except (ValueError, OverflowError, TypeError, RecursionError):
            return False  # write() says why, as for any event
        if payloads is None:
            return False
        batch, pos = writer._batch, writer._pos
        chan = batch._chans.get("http")
        if chan is None:
            chan = batch.channel_id("http")
        tid = batch._tasks.get(task)
        if tid is None:
            tid = batch.task_id(task)
        status = response.get("status")
        flags = ix.FLAG_RESPONSE | (ix.FLAG_CHUNKS if datas else 0) | (
            ix.FLAG_HTTP_ERROR if type(status) is int and status >= 400 else 0)
        record = payloads[-1]
        if len(payloads) > 1:
            buf = bytearray()
            bpos = batch.bpos
            for p in payloads[:-1]:
                bpos.append(pos + len(buf))
                buf += _frame(len(p), _crc(p))
                buf += p
            at = pos + len(buf)
            buf += _frame(len(record), _crc(record))
            buf += record
            out: bytes | bytearray = buf
            new = enc._new
            if len(enc._ids) + len(new) > enc._max_ids:
                enc._ids.clear()  # the spill, as Encoder.encode_payloads does it
            enc._ids.update(new)
            enc.blobs += len(new)
        else:
            at = pos
            out = _frame(len(record), _crc(record)) + record
        rows = batch.rows
        rows.frombytes(_ROW.pack(seq, at, start_ns, duration_ns,
                                 ix.NO_PARENT if parent is None else parent, chan, tid, flags))
        enc.events += 1
        if len(rows) >= _ROWS_FULL:  # the batch's ix record, after its last event
            out = bytearray(out)
            writer._index_record(out)
        writer._append(out)
        return True


def _encode(enc: Any, seq: int, start_ns: int, duration_ns: int, task: str,
            site: CallSite | None, parent: int | None, request: Value, req_b: bytes,
            response: Value, res_b: bytes, datas: Sequence[bytes], times: Sequence[int],
            meta: dict[str, Value], meta_b: bytes) -> list[bytes] | None:
    """The record payloads ``Encoder.encode_payloads`` makes of the event (new blobs,
    then the event), its de-duplication state not yet committed; None when the
    general path must decide (a record past the value-count check)."""
    pack = enc.packer.pack
    keys = 8  # k, seq, channel, request, start_ns, duration_ns, task, response
    site_b = b""
    if site is not None:
        keys += 1
        site_b = _site_bytes(site)
    parent_b = b""
    if parent is not None:
        keys += 1
        parent_b = _PARENT + pack(parent)
    if meta_b:
        keys += 1
        meta_b = _META + meta_b
    n = len(datas)
    if n:
        keys += 1
    head = b"".join((_map_head(keys), _K_SEQ, pack(seq), _CHANNEL))
    times_b = b"".join((_START, pack(start_ns), _DURATION, pack(duration_ns), _TASK, pack(task),
                        _RESPONSE))
    if n and len(datas[0]) >= BLOB_MIN_SIZE:  # "big": encode_payloads walks without a probe
        walk = True
    else:
        chunks_b = (_CHUNKS + _array_head(n) + b"".join(
            _PAIR + pack(d) + pack(t) for d, t in zip(datas, times, strict=True))) if n else b""
        record = b"".join((head, req_b, times_b, res_b, site_b, chunks_b, parent_b, meta_b))
        walk = len(record) >= BLOB_MIN_SIZE
    if not walk:
        return None if len(record) > DEFAULT_MAX_VALUES else [record]
    enc._new.clear()
    payloads: list[bytes] = []
    enc._payloads = payloads
    if len(req_b) >= BLOB_MIN_SIZE:
        req_b = pack(enc._walk(request, req_b))
    if len(res_b) >= BLOB_MIN_SIZE:
        res_b = pack(enc._walk(response, res_b))
    chunks_b = b""
    if n:
        if n == 1:  # a body read whole
            d = datas[0]
            parts = [_CHUNKS, b"\x91\x92", _ref(enc, pack(d), payloads)
                     if len(d) >= CHUNK_BLOB_MIN_SIZE else pack(d), pack(times[0])]
        else:
            parts = [_CHUNKS, _array_head(n)]
            for d, t in zip(datas, times, strict=True):
                parts += (_PAIR, _ref(enc, pack(d), payloads) if len(d) >= CHUNK_BLOB_MIN_SIZE
                          else pack(d), pack(t))
        chunks_b = b"".join(parts)
    if len(meta_b) - len(_META) >= BLOB_MIN_SIZE:
        meta_b = _META + pack(enc._walk(dict(meta), meta_b[len(_META):]))
    record = b"".join((head, req_b, times_b, res_b, site_b, chunks_b, parent_b, meta_b))
    payloads.append(record)
    for p in payloads:
        if len(p) > DEFAULT_MAX_VALUES:  # the rare huge record: write() counts and says
            return None
    return payloads


def _ref(enc: Any, data: bytes, payloads: list[bytes]) -> bytes:
    """The packed blob ref of ``data`` (one packed value, a chunk's bytes), its blob
    record added to ``payloads`` if new: what ``Encoder._blob`` gives, packed."""
    key = _blake2b(data, digest_size=16).digest()
    ident: int | None = enc._ids.get(key)
    if ident is None:
        new = enc._new
        ident = new.get(key)
        if ident is None:
            ident = new[key] = enc.blobs + len(new)
            payloads.append(_BLOB_HEAD + enc.packer.pack(ident) + _BLOB_VALUE + data)
    if ident < 0x100:
        return b"\xd4\x01" + bytes((ident,))
    if ident < 0x10000:
        return b"\xd5\x01" + ident.to_bytes(2, "big")
    if ident < 0x100000000:
        return b"\xd6\x01" + ident.to_bytes(4, "big")
    return b"\xd7\x01" + ident.to_bytes(8, "big")
