"""A packed cassette's index columns, read without decoding events (what the TUI and
``replay show`` open a million events with)."""

from __future__ import annotations

import pathlib

import pytest
from _format_child import golden_header

from replay._cassette import CassetteWriter, EventLog, read_cassette
from replay._cassette.errors import CassetteCorruptError, CassetteError
from replay._cassette.events import Event, RecordedError


def packed(path: pathlib.Path, events: list[Event]) -> EventLog:
    with CassetteWriter(path, golden_header()) as w:
        for ev in events:
            w.write(ev)
    log = read_cassette(path).events
    assert isinstance(log, EventLog)
    return log


def varied(n: int) -> list[Event]:
    out = []
    for i in range(n):
        if i % 7 == 3:
            out.append(Event(seq=i, channel="tool:x", request=i,
                             error=RecordedError("m.E", "boom")))
        elif i % 5 == 1:
            out.append(Event(seq=i, channel="http", request={"url": "u"},
                             response={"status": 500 if i % 2 else 200}))
        else:
            out.append(Event(seq=i, channel="clock", request=None, response=float(i)))
    return out


def test_flagged_names_the_events_with_any_of_the_bits(tmp_path: pathlib.Path) -> None:
    evs = varied(300)
    log = packed(tmp_path / "a.replay", evs)
    raised = [i for i, e in enumerate(evs) if e.error is not None]
    http = [i for i, e in enumerate(evs) if e.channel == "http"
            and isinstance(e.response, dict) and e.response["status"] >= 400]
    assert raised and http
    assert log.flagged(EventLog.RAISED) == raised
    assert log.flagged(EventLog.HTTP_ERROR) == http
    assert log.flagged(EventLog.RAISED | EventLog.HTTP_ERROR) == sorted(raised + http)
    assert log.flagged(EventLog.STREAMED) == []
    assert log.flagged(EventLog.RETURNED) == [i for i, e in enumerate(evs)
                                              if e.response is not None]
    assert log.flagged(0) == []


def test_seq_order_is_a_range_for_a_file_in_order_else_the_sorting_permutation(
        tmp_path: pathlib.Path) -> None:
    evs = varied(50)
    assert packed(tmp_path / "a.replay", evs).seq_order() == range(50)
    gaps = [Event(seq=2 * e.seq, channel=e.channel, request=e.request) for e in evs]
    assert packed(tmp_path / "b.replay", gaps).seq_order() == range(50)
    shuffled = evs[10:] + evs[:10]  # as a stream completing late leaves them
    order = packed(tmp_path / "c.replay", shuffled).seq_order()
    assert [shuffled[j].seq for j in order] == list(range(50))
    assert packed(tmp_path / "d.replay", []).seq_order() == range(0)


def test_frames_unchecked_at_open_are_checked_when_read_or_asked(
        tmp_path: pathlib.Path) -> None:
    evs = [Event(seq=i, channel="tool:x", request=i, response="v" * 900 + str(i))
           for i in range(3000)]
    path = tmp_path / "a.replay"
    log = packed(path, evs)
    frames = log._p.index.frames
    assert len(frames["off"]) >= 3
    log.check_frames()  # intact: nothing to say
    bad = int(frames["off"][1]) + int(frames["len"][1]) // 2  # inside the second frame
    data = bytearray(path.read_bytes())
    data[bad] ^= 0x40
    path.write_bytes(bytes(data))

    lazy = read_cassette(path, check_frames=False)
    assert isinstance(lazy.events, EventLog) and lazy.damage is None
    assert len(lazy.events) == 3000 and lazy.events[0] == evs[0]  # the first frame is fine
    with pytest.raises(CassetteCorruptError) as exc:
        lazy.events.check_frames()
    assert exc.value.offset == frames["off"][1]
    with pytest.raises(CassetteError):
        list(lazy.events)  # reaching the bad frame

    whole = read_cassette(path, strict=False)  # checked at open: read sequentially
    assert whole.damage is not None and not isinstance(whole.events, EventLog)
    assert 0 < len(whole.events) < 3000 and whole.events[0] == evs[0]
