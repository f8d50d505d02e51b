"""``replay import-vcr``: a vcrpy cassette (YAML or JSON) turned into ours.

Each interaction becomes one ``http`` event, in the cassette's order, on the
``main`` task, in the same canonical form live recording uses, so the result
replays through httpx, requests, urllib3 or aiohttp alike. vcrpy's own safe
loader reads the file (no Python object construction from data). The new
cassette goes through the normal writer, so redaction is on by default.
"""

from __future__ import annotations

import os
from typing import Any

from replay._capture.http.common import CHANNEL, header_get
from replay._capture.http.vcr import vcr_request_value, vcr_response_parts
from replay._cassette.events import Event, Value
from replay._cassette.redact import DEFAULT, Redactor
from replay._cassette.redacted import header_for

_MAGIC = {"gzip": b"\x1f\x8b", "x-gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}


def _still_encoded(body: bytes, encoding: str) -> bool:
    """vcrpy usually stores bodies decoded; tell the cases where it did not."""
    enc = encoding.split(",")[-1].strip().lower()
    magic = _MAGIC.get(enc)
    if magic is not None:
        return body.startswith(magic)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def load_vcr(path: str | os.PathLike[str]) -> tuple[list[Any], list[Any]]:
    """The (requests, responses) of a vcrpy cassette, read with vcrpy's safe loaders."""
    from vcr import serialize
    from vcr.serializers import jsonserializer, yamlserializer
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    serializer: Any = (jsonserializer if text.lstrip().startswith("{")
                       else yamlserializer)
    try:
        loaded = serialize.deserialize(text, serializer)
    except Exception as exc:  # YAML/JSON syntax, a missing key, an old format...
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"not a vcrpy cassette: {first}") from None
    return list(loaded[0]), list(loaded[1])


def vcr_cassette_events(path: str | os.PathLike[str]) -> list[Event]:
    """Every interaction of a vcrpy cassette as an ``http`` event."""
    requests, responses = load_vcr(path)
    events = []
    for seq, (request, response) in enumerate(zip(requests, responses, strict=False)):
        head, chunks, meta = vcr_response_parts(response)
        encoding = header_get(head["headers"], "content-encoding")
        body = b"".join(c.data for c in chunks)
        if encoding and _still_encoded(body, encoding):
            meta.pop("decoded", None)
        meta = {"client": "vcrpy", **meta}
        events.append(Event(seq=seq, channel=CHANNEL, request=vcr_request_value(request),
                            response=head, start_ns=seq * 1000, task="main", chunks=chunks,
                            meta=meta))
    return events


def import_vcr(source: str | os.PathLike[str], output: str | os.PathLike[str], *,
               redact: bool | Redactor = True) -> int:
    """Write the vcrpy cassette ``source`` as our cassette ``output``; the event count."""
    from replay._cassette import CassetteWriter, Header
    events = vcr_cassette_events(source)
    redactor = DEFAULT if redact is True else (redact or None)
    meta: dict[str, Value] = {"imported_from": "vcrpy",
                              "source": os.path.basename(os.fspath(source))}
    writer = CassetteWriter(output, header_for(Header.new(meta=meta), redactor),
                            transform=redactor)
    try:
        for ev in events:
            writer.write(ev)
    except BaseException:
        writer.abort()
        try:
            os.unlink(writer.partial_path)
        except OSError:
            pass
        raise
    writer.close()
    return len(events)
