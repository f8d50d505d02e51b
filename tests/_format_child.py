"""Deterministic test events, and the writer process the crash test kills.

Imported by the tests/test_format*.py modules for ``make_event`` and
``golden_header``. Run as a script it writes events with CassetteWriter and
prints one acknowledgement line per event once ``write()`` has returned:

    python tests/_format_child.py write PATH
        a fresh process: prints "ready", then "ack <i>" per event, forever
    python tests/_format_child.py serve
        a fork server: for each "PATH" line on stdin it forks a writer that
        prints "pid <pid>", "ready" and "ack <i>" lines; when that writer is
        dead the server prints "done <pid>". Forking skips interpreter start-up,
        so hundreds of kill points stay cheap.

Only ``replay._cassette.events`` and ``replay._cassette`` (layer 1) are imported, so the
helper also checks that the format layer stands alone.
"""

from __future__ import annotations

import os
import sys
import types

if __name__ == "__main__":  # load layer 1 without the package's __init__ (faster)
    _root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    _pkg = types.ModuleType("replay")
    _pkg.__path__ = [os.path.join(_root, "replay")]
    sys.modules.setdefault("replay", _pkg)

from replay._cassette import CassetteWriter, Header
from replay._cassette.events import CallSite, Chunk, Event, RecordedError

_WORDS = ("agent", "model", "tool", "call", "replay", "cassette", "token", "stream",
          "request", "response", "error", "retry", "schema", "search", "result", "weather",
          "city", "price", "order", "user", "assistant", "system", "prompt", "function",
          "argument", "value", "frame", "block", "record", "window")


def text(i: int, length: int) -> str:
    """Deterministic varied text of exactly ``length`` chars (no randomness)."""
    out: list[str] = []
    n = 0
    k = i * 7919
    while n < length:
        w = _WORDS[k % len(_WORDS)]
        k = (k * 1103515245 + 12345) % 2**31
        out.append(w)
        n += len(w) + 1
    return " ".join(out)[:length]


SYSTEM = "You are a careful agent. " + text(0, 700)


def make_event(i: int) -> Event:
    """Event ``i`` of a deterministic run: varied shapes, repeated big content."""
    site = CallSite("/srv/agent/main.py", 10 + i % 7, "step" if i % 2 else "<module>")
    kind = i % 6
    if kind == 0:
        return Event(seq=i, channel="clock", request=None, response=1_700_000_000.25 + i,
                     start_ns=i * 1000, duration_ns=120, site=site)
    if kind == 1:  # a model call resending the conversation so far
        history = [{"role": "user" if j % 2 else "assistant", "content": text(j, 300 + j % 5)}
                   for j in range(i // 6 + 1)]
        return Event(seq=i, channel="http",
                     request={"method": "POST", "url": "https://api.example.com/v1/chat",
                              "body": {"system": SYSTEM, "messages": history}},
                     response={"status": 200, "headers": [("content-type", "text/event-stream")],
                               "body": b"data: " + text(i, 40).encode() + b"\n\n"},
                     start_ns=i * 1000, duration_ns=5_000_000, task="main/1", site=site,
                     chunks=(Chunk(b"data: {\"d\": 1}\n\n", 10), Chunk(bytes(range(256)), 99)),
                     meta={"stream": True, "tokens": (12, 30)})
    if kind == 2:
        return Event(seq=i, channel="tool:search", request={"args": (text(i, 30), i),
                                                             "kwargs": {"limit": 5}},
                     error=RecordedError("builtins.TimeoutError", "timed out after 5s",
                                         "Traceback (most recent call last):\n" + text(1, 600),
                                         ("timed out after 5s", 5)),
                     start_ns=i * 1000, duration_ns=5_000_000_000, parent=i - 1, site=site)
    if kind == 3:
        return Event(seq=i, channel="uuid", request=None,
                     response=bytes((i * 37 + k) % 256 for k in range(16)), start_ns=i * 1000,
                     task="main/2/t0", meta={"nested": {"a": [1, -2, 3.5, None, True, False]},
                                            "big": -(2**63), "u": 2**64 - 1})
    if kind == 4:
        return Event(seq=i, channel="tool:read_file", request={"path": "/data/notes.txt"},
                     response=text(4, 2000), start_ns=i * 1000, duration_ns=300, site=site)
    return Event(seq=i, channel="random", request={"fn": "random", "unicode": "héllo wörld ✓"},
                 response=[0.5, (1, (2, ())), {"k": b"\x00\xff"}], start_ns=i * 1000)


def golden_header() -> Header:
    """A header with fixed values (Header.new would stamp the time)."""
    return Header(created="2024-01-01T00:00:00.000000Z", argv=("agent.py", "--fast"),
                  python="CPython 3.11.7", platform="test-platform",
                  meta={"fingerprint": {"model": "m-1", "tools": ("a", "b")}, "parent": None})


def _write_forever(path: str) -> None:
    out = sys.stdout
    version = int(os.environ.get("FORMAT_CHILD_VERSION", "2"))
    w = CassetteWriter(path, golden_header(), version=version)  # writes path + ".partial"
    out.write("ready\n")
    out.flush()
    i = 0
    while True:
        w.write(make_event(i))
        out.write(f"ack {i}\n")
        out.flush()
        i += 1


def _serve() -> None:
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        pid = os.fork()
        if pid == 0:
            try:
                sys.stdout.write(f"pid {os.getpid()}\n")
                sys.stdout.flush()
                _write_forever(path)
            finally:
                os._exit(1)
        os.waitpid(pid, 0)
        sys.stdout.write(f"done {pid}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        _serve()
    else:
        _write_forever(sys.argv[2])
