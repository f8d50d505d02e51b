"""What-if edits: a copy of a cassette with one event's answer changed.

    replay.edit("run.replay", event=7, output="what-if.replay",
                set={"in_stock": False})          # a tool result field
    replay.edit("run.replay", event=3, output="late.replay", response=1.9e9)   # a clock
    replay.edit("run.replay", event=5, output="fail.replay",
                error="builtins.TimeoutError: the API timed out")

What is edited is what the agent received: a tool's or capture's result, a
clock or random value, or for an ``http`` event its **body** (``set`` paths
go into the JSON body, ``choices.0.message.content``; ``response`` replaces
the body: a str/bytes as is, anything else as JSON). Streamed (SSE) bodies
can only be replaced whole. ``error`` makes the call raise instead.

The copy keeps every other event and names its parent (``replay.parent_of``).
Replaying it strictly serves the edited answer and stops at the first request
the edited path no longer shares with the recording; replaying it in
new-events mode (``replay.run(copy, mode="new-events")`` or ``replay play
--live``) runs those requests live instead, down the edited path.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from typing import Any

from replay._capture.http.common import header_get
from replay._cassette import CassetteWriter, Header, read_cassette
from replay._cassette.events import Chunk, Event, RecordedError, Value
from replay._cassette.redact import DEFAULT as DEFAULT_REDACTOR
from replay._cassette.redact import Redactor
from replay._cassette.redacted import header_for
from replay._runs.fork import link_meta

_UNSET: Any = object()
_PART = re.compile(r"[^.\[\]]+|\[(\d+)\]")


class EditError(ValueError):
    """An edit that cannot be made (no such event, path, or a body that is not JSON)."""


def edit(path: str | os.PathLike[str], *, event: int, output: str | os.PathLike[str],
         response: Any = _UNSET, set: Mapping[str, Any] | None = None,
         error: str | None = None, redact: bool | Redactor = True) -> Event:
    """Write ``output``: ``path`` with event ``event``'s answer changed; the new event.

    Give ``response`` (the whole answer), ``set`` (``{"a.b[0]": value}``
    fields in it) or ``error`` (``"module.Type: message"``). Written through
    the cassette writer, so redaction applies.
    """
    if response is _UNSET and not set and error is None:
        raise EditError("nothing to change: give response=, set= or error=")
    if os.path.abspath(output) == os.path.abspath(path):
        raise EditError("edit writes a copy: give an output other than the cassette itself")
    cassette = read_cassette(path)
    found = next((ev for ev in cassette.events if ev.seq == event), None)
    if found is None:
        last = max((ev.seq for ev in cassette.events), default=-1)
        raise EditError(f"{path} has no event #{event} (its events are #0..#{last})")
    if found.parent is not None:
        raise EditError(f"event #{event} happened inside #{found.parent}, which replay serves "
                        f"whole; edit #{found.parent} instead")
    new = edited(found, response=response, set=set, error=error)
    old = cassette.header
    meta = dict(old.meta)
    meta.update(link_meta(path, edited=event))
    redactor = DEFAULT_REDACTOR if redact is True else (redact or None)
    header = header_for(Header(old.created, old.argv, old.python, old.platform, meta), redactor)
    if redactor is not None:
        new = redactor(new)  # what is written is what the caller gets back (and may print)
    with CassetteWriter(output, header, transform=redactor) as writer:
        for ev in cassette.events:
            writer.write(new if ev.seq == event else ev)
    return new


def edited(ev: Event, *, response: Any = _UNSET, set: Mapping[str, Any] | None = None,
           error: str | None = None) -> Event:
    """``ev`` with its answer changed (see :func:`edit`)."""
    meta = dict(ev.meta)
    meta["edited"] = True
    if error is not None:
        kind, _, message = error.partition(":")
        if not kind.strip() or "." not in kind:
            raise EditError(f"error must read 'module.Type: message' "
                            f"(e.g. 'builtins.TimeoutError: too slow'), not {error!r}")
        rec = RecordedError(kind.strip(), message.strip(), "", (message.strip(),))
        return dataclasses.replace(ev, response=None, error=rec, chunks=(), meta=meta)
    if ev.channel == "http":
        return _edit_http(ev, response, set or {}, meta)
    value: Any = ev.response if response is _UNSET else response
    for where, new in (set or {}).items():
        value = set_path(value, where, new)
    return dataclasses.replace(ev, response=value, error=None, meta=meta)


def _edit_http(ev: Event, response: Any, fields: Mapping[str, Any],
               meta: dict[str, Value]) -> Event:
    head = ev.response
    if not isinstance(head, dict):
        raise EditError(f"event #{ev.seq} holds no HTTP response to edit (it raised "
                        f"{ev.error}); give response= a body, with the status it had")
    body = b"".join(c.data for c in ev.chunks)
    if response is not _UNSET:
        body = response if isinstance(response, bytes) else (
            response.encode() if isinstance(response, str) else _json(response))
    if fields:
        ctype = header_get(head.get("headers"), "content-type") or ""
        if "event-stream" in ctype:
            raise EditError(f"event #{ev.seq} is a streamed (SSE) answer: replace its body "
                            f"whole with response=, fields cannot be set in it")
        try:
            doc = json.loads(body)
        except ValueError:
            raise EditError(f"the body of event #{ev.seq} is not JSON; replace it with "
                            f"response=") from None
        for where, new in fields.items():
            doc = set_path(doc, where, new)
        body = _json(doc)
    pairs = head.get("headers")
    headers: list[Value] = []
    for pair in pairs if isinstance(pairs, list) else []:
        if isinstance(pair, list | tuple) and len(pair) == 2:
            name = str(pair[0]).lower()
            if name == "content-encoding":
                continue  # the new body is stored plain
            headers.append([pair[0], str(len(body))] if name == "content-length" else pair)
    meta.pop("decoded", None)
    at = ev.chunks[0].at_ns if ev.chunks else 0
    return dataclasses.replace(ev, response={**head, "headers": headers}, error=None,
                               chunks=(Chunk(body, at),) if body else (), meta=meta)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def parse_path(where: str) -> list[str | int]:
    """``"a.b[0].c"`` or ``"a.b.0.c"`` as keys and indexes."""
    parts: list[str | int] = []
    for m in _PART.finditer(where):
        token = m.group(1) if m.group(1) is not None else m.group(0)
        parts.append(int(token) if token.isdigit() else token)
    if not parts:
        raise EditError(f"empty path {where!r}")
    return parts


def set_path(value: Any, where: str, new: Any) -> Any:
    """A copy of ``value`` with the field at ``where`` set to ``new`` (may add a key)."""
    parts = parse_path(where)

    def put(node: Any, i: int) -> Any:
        key = parts[i]
        last = i == len(parts) - 1
        if isinstance(node, dict):
            name = str(key)
            if not last and name not in node:
                raise EditError(f"{where}: no field {name!r} "
                                f"(fields: {', '.join(map(str, node)) or 'none'})")
            out = dict(node)
            out[name] = new if last else put(node[name], i + 1)
            return out
        if isinstance(node, list | tuple) and isinstance(key, int):
            if not -len(node) <= key < len(node):
                raise EditError(f"{where}: index {key} out of range (length {len(node)})")
            items = list(node)
            items[key] = new if last else put(node[key], i + 1)
            return items if isinstance(node, list) else tuple(items)
        raise EditError(f"{where}: cannot index {type(node).__name__} with {key!r}")

    return put(value, 0)


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (``false``, ``3``, ``{"a": 1}``), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text
