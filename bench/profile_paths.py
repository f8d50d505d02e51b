"""Where the time goes on the paths behind the goals bench shows as missed.

Not run by ``make bench`` (it measures parts, not products against each other);
the closing notes of docs/performance.md come from it. Every figure is CPU
time of this process, best of ``--repeat`` runs, per event or per call:

* a recorded ``time.time()`` and a replayed one, beside the parts they are
  made of (the writer's value record and its copy into the journal's memory
  map, against one ``write()``; the session's short path);
* a recorded ``@replay.tool`` call with a ~500-byte result (bench_clock.py's),
  beside its parts (``CassetteWriter.write_call``: the redaction scan and walk,
  the encoding and the append; the wrapper's share);
* writing one ~2 KB HTTP event (a loopback server's chat answer): redaction
  and its secret scan over the body, encoding, compress/flush/write, and the
  request canonicalisation the transport does before the call;
* loading those events and reading each one's request, response and body
  (``replay.load`` alone decodes nothing): a cProfile by own time;
* the fixed cost of a record / play session with the SDKs imported.

    python bench/profile_paths.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import mmap
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import httpx  # noqa: E402
import zstandard  # noqa: E402
from bench_http import body, run_requests, start_server  # noqa: E402

import replay  # noqa: E402
from replay._analysis import fingerprint as _fingerprint  # noqa: E402
from replay._capture import callsite as _callsite  # noqa: E402
from replay._capture import patch as _patch  # noqa: E402
from replay._capture.http.httpx import kit as _httpx_kit  # noqa: E402
from replay._cassette import CassetteWriter, Header, read_cassette  # noqa: E402
from replay._cassette.codec import Encoder  # noqa: E402
from replay._cassette.events import Event  # noqa: E402
from replay._cassette.redact import DEFAULT  # noqa: E402
from replay._cassette.writer import CallShape  # noqa: E402

REPEAT = 5


def cost(fn: Callable[[], Any], n: int = 1) -> float:
    """CPU us per unit: best of REPEAT runs of ``fn`` (which does ``n`` units)."""
    best = float("inf")
    for _ in range(REPEAT):
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
    return best / n * 1e6


def loop(fn: Callable[[], Any], n: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(n):
            fn()
    return run


def row(label: str, us: float, whole: float | None = None) -> None:
    share = f"{us / whole:>6.0%}" if whole else ""
    print(f"  {label:<58}{us:>9.2f} us{share}")


def write_cost(events: list[Event], tmp: str, *, redact: bool) -> Callable[[], None]:
    def run() -> None:
        w = CassetteWriter(os.path.join(tmp, "w.replay"), Header.new(),
                           transform=DEFAULT if redact else None)
        for ev in events:
            w.write(ev)
        w.close()
    return run


def flush_cost(records: list[bytes], tmp: str) -> Callable[[], None]:
    def run() -> None:
        cobj = zstandard.ZstdCompressor(level=3).compressobj()
        with open(os.path.join(tmp, "z"), "wb") as f:
            for data in records:
                f.write(cobj.compress(data) + cobj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
                f.flush()
    return run


def _appends(tmp: str, n: int, size: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """(n write()s of ``size`` bytes appended to a new file, n copies into a shared
    memory map of one): the journal's way and the alternative."""
    data = b"x" * size

    def write() -> None:
        fd = os.open(os.path.join(tmp, "a"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            for _ in range(n):
                os.write(fd, data)
        finally:
            os.close(fd)

    def mapped() -> None:
        fd = os.open(os.path.join(tmp, "m"), os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        try:
            os.posix_fallocate(fd, 0, n * size)
            with mmap.mmap(fd, n * size) as mm:
                for i in range(0, n * size, size):
                    mm[i:i + size] = data
        finally:
            os.close(fd)
    return write, mapped


def clock(tmp: str, n: int) -> None:
    path = os.path.join(tmp, "clock.replay")
    with replay.record(path):
        rec = cost(loop(time.time, n), n)
    with replay.play(path, unused="ignore"):
        play = cost(loop(time.time, n), n)
    plain = cost(loop(time.time, n), n)
    ev = replay.load(path).events[0]
    assert ev.site is not None
    writer = CassetteWriter(os.path.join(tmp, "v.replay"), Header.new(), transform=DEFAULT)
    shape = writer.value_shape("clock", {"fn": "time.time"}, "main", ev.site)
    assert shape is not None
    seqs = itertools.count()
    size = len(Encoder().encode_event(ev))
    write, mapped = _appends(tmp, n, size)
    print(f"time.time(): plain {plain:.2f} us, recorded {rec:.2f} us, replayed {play:.2f} us")
    print(" recorded (Session.read, then CassetteWriter.write_value), by part:")
    value = cost(loop(lambda: writer.write_value(shape, seqs, 5_000_000_000, 300, 1.5), n), n)
    writer.close()
    alone = cost(write, n)
    row("CassetteWriter.write_value (record, CRC, row, lock, copy)", value, rec)
    row(f"  of which the {size}-byte record's copy into the shared map", cost(mapped, n), rec)
    row("Session.read: context reads, cached site, perf_counter x2", rec - value, rec)
    row("for comparison: one write() of it (the journal before)", alone, rec)
    print(" replayed: Session.read, the cached site, and the head of the task's queue")
    print("  (Matcher.take_value, under the matcher's lock); no event is built")
    print(f"  call-site walk of the long path, for comparison: "
          f"{cost(loop(lambda: _callsite.find(sys._getframe()), n), n):.2f} us")


def tool(tmp: str, n: int) -> None:
    from bench_clock import _result, lookup

    from replay._capture.tasks import get_current
    path = os.path.join(tmp, "tool.replay")
    plain = cost(lambda: [_result(i) for i in range(n)], n)
    with replay.record(path):
        rec = cost(lambda: [lookup(i) for i in range(n)], n) - plain
        state = get_current()
        assert state is not None
        writer = state.session._values
        shape = next(v[1] for v in state.reads.values() if isinstance(v[1], CallShape))
        request, response = {"args": {"i": 7}}, _result(7)
        seqs = itertools.count(10 * n)
        call = cost(loop(lambda: writer.write_call(shape, next(seqs), 5, 5, None, request,
                                                   response), n), n)
        redactor = writer._redactor
        pack = writer._encoder.packer.pack
        packed = pack(request) + pack(response)
        clean = cost(loop(lambda: redactor.clean(packed, request, response), n), n)
        scan = cost(loop(lambda: redactor._scan(packed), n), n)
        encode = cost(loop(lambda: (pack(request), pack(response)), n), n)
    _, mapped = _appends(tmp, n, len(packed) + 120)
    print(f"\n@replay.tool with a ~500-byte result: {rec:.2f} us over the unrecorded call "
          f"({plain:.2f} us)")
    row("CassetteWriter.write_call (record, CRC32C, index row, lock, append)", call, rec)
    row("  redaction: Redactor.clean (one anchor scan, the keys' verdicts)", clean, rec)
    row("    of which the anchor scan of the encoded values", scan, rec)
    row("  msgpack encoding of request and result", encode, rec)
    row("  the record's copy into the journal's memory map", cost(mapped, n), rec)
    row("the wrapper: binding, cached site, seq, PARENT, clock x2, check", rec - call, rec)


def http(tmp: str, n: int) -> None:
    proc, url = start_server()
    path = os.path.join(tmp, "http.replay")
    try:
        with httpx.Client() as client, replay.record(path):
            run_requests(client, url, range(n))
    finally:
        proc.kill()
        proc.wait()
    events = list(replay.load(path).events)
    ev = events[len(events) // 2]
    enc = Encoder()
    records = [enc.encode_event(e) for e in events]
    total = cost(write_cost(events, tmp, redact=True), n)
    print(f"\none ~2 KB HTTP chat event ({len(events[0].chunks[0].data)} B body), recorded:")
    row("CassetteWriter.write, redaction included", total, total)
    row("  redaction (a clean event: one anchor scan of it all)",
        cost(loop(lambda: DEFAULT(ev), n), n), total)
    data = ev.chunks[0].data
    row("    for comparison: a scan of the response body alone",
        cost(loop(lambda: DEFAULT.data(data), n), n), total)
    row("  encoding (walk, blake2b per large value, msgpack, frames)",
        cost(lambda: [Encoder().encode_event(e) for e in events], n), total)
    row("  zstd compress + block flush + write() per event", cost(flush_cost(records, tmp), n),
        total)
    req = httpx.Request("POST", url + "/v1/chat/completions", json=body(7))

    canonical = _httpx_kit(httpx)._request_value  # what the transport does before the call
    print("  before the call (not in the writer):")
    row("request canonicalisation (JSON body, URL, headers)",
        cost(loop(lambda: canonical(req), n), n))
    def read_all() -> None:
        for e in read_cassette(path).events:
            _ = (e.request, e.response, e.chunks)
    load = cost(read_all, n)
    print(f"\nloading those {n} events, each read: {load:.1f} us an event; cProfile by own "
          "time:")
    prof = cProfile.Profile()
    prof.runcall(read_all)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(8)
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
    for ln in lines[start:start + 9]:
        print("  " + ln.replace(os.path.dirname(HERE) + os.sep, ""))


def sessions(tmp: str) -> None:
    import anthropic  # noqa: F401  (an agent's process has its SDKs loaded)
    import openai  # noqa: F401

    path = os.path.join(tmp, "empty.replay")

    def rec() -> None:
        with replay.record(path):
            pass

    def play() -> None:
        with replay.play(path):
            pass

    def swap() -> None:
        _patch.install()
        _patch.uninstall()

    rec()
    print(f"\nfixed cost of a session ({len(sys.modules):,} modules imported), wall ms:")
    for label, fn in (("empty record session", rec), ("empty play session", play),
                      ("context fingerprint (git rev-parse + status, env)",
                       _fingerprint.live_context),
                      ("patch install + uninstall (and the scan for fake datetimes)", swap)):
        best = min(_wall(fn) for _ in range(REPEAT * 2))
        print(f"  {label:<62}{best * 1e3:>7.2f} ms")


def _wall(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    global REPEAT
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--requests", type=int, default=1000)
    args = ap.parse_args()
    REPEAT = args.repeat
    with tempfile.TemporaryDirectory() as tmp:
        clock(tmp, args.calls)
        tool(tmp, args.calls // 4)
        http(tmp, args.requests)
        sessions(tmp)


if __name__ == "__main__":
    main()
