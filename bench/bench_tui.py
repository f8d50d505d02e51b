"""TUI responsiveness: time to first paint and per-keystroke latency by cassette size.

For 1,000, 10,000 and 100,000-event cassettes (the sample agent run repeated),
prints two sets of figures:

* in process (Textual's headless driver, so no terminal I/O): time from
  starting the app to its first painted frame (the loading screen), to the
  timeline painted with rows, and the median / p95 / max latency of each
  keystroke from the key event until its handlers ran and the screen painted;
* in a real terminal (``replay tui`` under tmux, when tmux is installed): time
  from launching the command (Python start-up and imports included) until
  the screen shows the loading line and then the rows, and from ``send-keys``
  until the screen changed, sampled with capture-pane (a few ms resolution).

Goals (issue 7): first paint under 1 s, keystrokes under 50 ms at 100,000 events.

    python bench/bench_tui.py [--sizes 1000 10000 100000] [--repeat 5] [--no-tmux]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from textual import events
from textual.pilot import Pilot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from _goals import goal  # noqa: E402

from tests import tui_samples as samples  # noqa: E402
from tui.app import ReplayApp  # noqa: E402
from tui.main_screen import MainScreen  # noqa: E402

KEYS = ("j", "k", "pagedown", "pageup", "G", "g", "e", "E", "m", "2", "3", "1", "F", "F",
        "F", "F", "F")
"""Keys timed, in order: moves, jumps, tabs, and the flag filter through its cycle."""


class _Screen(MainScreen):
    def on_mount(self) -> None:
        app = self.app
        assert isinstance(app, TimedApp)
        self.call_after_refresh(app.mark, "first")

    def show_run(self, *args: Any) -> None:
        super().show_run(*args)
        app = self.app
        assert isinstance(app, TimedApp)
        self.call_after_refresh(app.mark, "rows")


class TimedApp(ReplayApp):
    """The app with paint times recorded."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.t0 = time.perf_counter()
        self.marks: dict[str, float] = {}

    def get_default_screen(self) -> MainScreen:
        return _Screen()

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, time.perf_counter() - self.t0)


async def _refreshed(app: ReplayApp) -> None:
    done = asyncio.Event()
    app.call_after_refresh(done.set)
    await done.wait()


async def keystroke(pilot: Pilot[None], key: str) -> float:
    """Seconds from a key event until every message it caused is handled and painted.

    ``pilot.press`` polls for idleness in 20 ms sleeps, which would swamp the
    figure; this sends the key as the driver does, waits for the screen's
    queues to drain (twice: handlers post more messages) and paints.
    """
    app = pilot.app
    char = key if len(key) == 1 else None
    t = time.perf_counter()
    event = events.Key(key, char)
    event.set_sender(app)
    app.post_message(event)
    await pilot._wait_for_screen()
    await pilot._wait_for_screen()
    app.screen._on_timer_update()
    return time.perf_counter() - t


async def in_process(path: str) -> tuple[float, float, dict[str, list[float]]]:
    """(first paint s, rows painted s, latencies by key in s)."""
    app = TimedApp(path)
    lat: dict[str, list[float]] = {}
    async with app.run_test(size=(160, 45)) as pilot:
        deadline = time.perf_counter() + 60
        while "rows" not in app.marks:
            if time.perf_counter() > deadline or not app.is_running:
                raise RuntimeError("the timeline never showed")
            await asyncio.sleep(0.005)
        while not app.settled:  # keys are timed once the background grouping into steps
            await asyncio.sleep(0.005)  # (runs up to tui.app.STEPS_AUTO events) is done
        await pilot.pause()
        for _ in range(3):
            for key in KEYS:
                lat.setdefault(key, []).append(await keystroke(pilot, key))
                await pilot.pause()
        t = time.perf_counter()
        app.main.run_search("declined")
        await app.workers.wait_for_complete()
        await _refreshed(app)
        lat["search (whole run)"] = [time.perf_counter() - t]
    return app.marks["first"], app.marks["rows"], lat


_SOCKETS = itertools.count()


class Tmux:
    """A private tmux server running ``replay tui``."""

    def __init__(self, path: str) -> None:
        # a socket of its own: a new session on the socket of a server still being
        # killed (the previous size's) can die with it and never paint
        self.sock = f"bench-tui-{os.getpid()}-{next(_SOCKETS)}"
        replay_cmd = os.path.join(os.path.dirname(sys.executable), "replay")
        self.t0 = time.perf_counter()
        self._tmux("new-session", "-d", "-x", "160", "-y", "45", f"{replay_cmd} tui {path}")

    def _tmux(self, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TMUX")}
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True,
                              text=True, check=False, env=env).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p")

    def wait(self, cond: Any, timeout: float = 30.0) -> float:
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if cond(self.screen()):
                return time.perf_counter()
            time.sleep(0.002)
        raise TimeoutError(f"the screen did not change within {timeout:.0f} s")

    def key(self, key: str) -> float:
        before = self.screen()
        t = time.perf_counter()
        self._tmux("send-keys", key)
        return self.wait(lambda s: s != before) - t

    def close(self) -> None:
        self._tmux("kill-server")


def in_tmux(path: str, n: int) -> tuple[float, float, list[float]]:
    """(first paint s, rows painted s, keystroke latencies s) in a real terminal."""
    tm = Tmux(path)
    try:
        first = tm.wait(lambda s: s.strip() != "") - tm.t0
        rows = tm.wait(lambda s: f"{n:,} events" in s and f"1/{n}" in s) - tm.t0
        tm.wait(lambda s: "Search" in s)  # the footer: input is live
        time.sleep(0.3)
        lat = [tm.key(k) for k in ("j", "k") * 10]
    finally:
        tm.close()
    return first, rows, lat


def _p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(0.95 * len(xs)))]


def _ms(xs: list[float]) -> str:
    p95 = _p95(xs)
    xs = sorted(xs)
    return f"{statistics.median(xs) * 1e3:7.1f} {p95 * 1e3:7.1f} {xs[-1] * 1e3:7.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--no-tmux", action="store_true", help="skip the real-terminal run")
    args = ap.parse_args()
    tmux = shutil.which("tmux") is not None and not args.no_tmux
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = samples.write(os.path.join(tmp, f"run{n}.replay"), samples.big_run(n))
            size = os.path.getsize(path)
            first, rows, lat = asyncio.run(in_process(path))
            first_ip, rows_ip, first_tm = first, rows, None
            print(f"\n{n:,} events ({size / 1e6:.1f} MB)")
            print(f"  in process:  first paint {first * 1e3:7.1f} ms   rows painted "
                  f"{rows * 1e3:7.1f} ms")
            print("  keystroke latency ms     median     p95     max")
            for key, xs in lat.items():
                print(f"    {key:<22} {_ms(xs)}")
            allkeys = [x for k, xs in lat.items() if not k.startswith("search") for x in xs]
            print(f"    {'all keys':<22} {_ms(allkeys)}")
            if tmux:
                try:
                    first, rows, tl = in_tmux(path, n)
                except TimeoutError as exc:  # a busy machine; the in-process figures stand
                    print(f"  tmux (replay tui, real terminal): no figures, {exc}")
                    continue
                first_tm = first
                print(f"  tmux (replay tui, real terminal): first paint {first * 1e3:7.1f} ms   "
                      f"rows painted {rows * 1e3:7.1f} ms")
                print(f"    {'j/k keystroke':<22} {_ms(tl)}")
    goal("tui.first_paint", first_ip * 1e3, 1000, "<=", unit="ms",
         what=f"TUI first paint at {n:,} events (in process)",
         detail=f"rows painted {rows_ip * 1e3:,.0f} ms"
                + (f"; real terminal {first_tm * 1e3:,.0f} ms, Python start-up included"
                   if first_tm is not None else ""))
    goal("tui.keystroke", statistics.median(allkeys) * 1e3, 50, "<=", unit="ms",
         what=f"TUI keystroke latency at {n:,} events, median of all keys (in process)",
         detail=f"p95 {_p95(allkeys) * 1e3:.0f} ms")
    if not tmux:
        print("\n(tmux not installed or --no-tmux: real-terminal figures skipped)")


if __name__ == "__main__":
    main()
