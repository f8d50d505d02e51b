"""``replay show`` streams a packed cassette (issue 16): each line is printed as its
event is decoded, holding only the index columns it needs (seq and pos).

Observable without timing: a cassette whose last data frame is damaged still shows
its first events at once, then names the damage and exits 1 (docs/cli.md, show).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import pathlib

import pytest

from replay._cassette import CassetteWriter, Header, Limits
from replay._cassette import index as ix
from replay._cassette.eventlog import open_packed
from replay._cassette.events import CallSite, Event
from replay._cassette.reader import iter_events, open_events
from replay._cli import main

N = 3000


def _event(i: int) -> Event:
    text = "".join(hashlib.blake2b(i.to_bytes(4, "little"), salt=bytes([s])).hexdigest()
                   for s in range(5))  # 640 characters unlike any other: several frames
    return Event(seq=i, channel="tool:fetch", request={"i": i}, response=text,
                 start_ns=i * 1000, duration_ns=10, site=CallSite("agent.py", 3, "run"),
                 task="main")


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("show") / "run.replay"
    with CassetteWriter(path, Header.new()) as w:
        for i in range(N):
            w.write(_event(i))
    return path


def _show(path: pathlib.Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["show", str(path), *args])
    return code, out.getvalue(), err.getvalue()


def test_lean_index_reads_the_same_events(packed: pathlib.Path) -> None:
    full = open_events(packed)
    lean = open_events(packed, columns=())
    assert full is not None and lean is not None
    assert list(lean.events) == list(full.events) == [_event(i) for i in range(N)]
    assert list(iter_events(packed)) == list(full.events)
    assert lean.events.seq(5) == 5
    with pytest.raises(KeyError):
        lean.events.channel(5)  # not held: show asks for it only with --channel
    with_chan = open_events(packed, columns=("chan",))
    assert with_chan is not None and with_chan.events.channel(5) == "tool:fetch"


def test_lean_index_still_checks_every_column() -> None:
    batch = ix.Batch()
    batch.add(_event(0), 0)
    record = batch.record()
    record["flags"] = b""  # a column show does not hold, malformed
    with pytest.raises(ValueError, match="'flags' is not 1 items"):
        ix.Index(columns=()).add_ix(record)
    with pytest.raises(ValueError, match="no index columns"):
        ix.Index(columns=("bogus",))


def test_show_streams_the_first_events_of_a_cassette_damaged_at_its_end(
        packed: pathlib.Path, tmp_path: pathlib.Path) -> None:
    code, intact, _ = _show(packed)
    assert code == 0 and len(intact.splitlines()) == N
    frames = open_packed(str(packed), Limits(), check_frames=False)._p.index.frames
    assert len(frames["off"]) >= 3, "the test needs a cassette of several data frames"
    data = bytearray(packed.read_bytes())
    data[frames["off"][-1] + frames["len"][-1] // 2] ^= 0x40  # inside the last data frame
    damaged = tmp_path / "damaged.replay"
    damaged.write_bytes(bytes(data))
    code, out, err = _show(damaged)
    lines = out.splitlines()
    assert code == 1
    assert "cassette damaged" in err and f"at offset {frames['off'][-1]}" in err
    assert 0 < len(lines) < N  # every event before the damaged frame, in order
    assert lines == intact.splitlines()[:len(lines)]


def test_show_channel_filter_on_the_lean_index(packed: pathlib.Path) -> None:
    code, out, _ = _show(packed, "--channel", "tool")
    assert code == 0 and len(out.splitlines()) == N
    code, out, _ = _show(packed, "--channel", "http")
    assert code == 0 and out == ""
