"""Stream playback: a streamed answer re-appears chunk by chunk at recorded pace."""

from __future__ import annotations

import statistics
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Static

import replay
from tui.model import fmt_duration, fmt_offset
from tui.payloads import chunk_gaps_ms, stream_pieces, streamed
from tui.rendered import RenderedView

BARS = "▁▂▃▄▅▆▇█"
SPEEDS = (1.0, 2.0, 5.0, 10.0, 100.0)
"""Playback speeds: recorded pace and faster."""


def spark(gaps: list[float], width: int, position: int, height: int = 3) -> Text:
    """Bars of inter-chunk gaps, ``height`` lines tall, one column group per chunk.

    Chunks are bucketed (max gap) when there are more than ``width``; a chunk
    gets up to 4 columns when there are few. Chunks already played are bright,
    the current one reversed, the rest dim.
    """
    if not gaps or width <= 0:
        return Text("")
    n = len(gaps)
    per = max(1, -(-n // width))
    buckets = [max(gaps[k:k + per]) for k in range(0, n, per)]
    cell = max(1, min(4, width // len(buckets)))
    top = max(buckets) or 1.0
    current = (position - 1) // per if position > 0 else -1
    levels = [round(v / top * height * 8) if v > 0 else 0 for v in buckets]
    out = Text()
    for row in range(height):
        floor = (height - 1 - row) * 8
        for b, level in enumerate(levels):
            fill = max(0, min(8, level - floor))
            char = (" " + BARS)[fill] if fill or row < height - 1 else BARS[0]
            if b == current:
                style = "bold #ff9e64"
            elif b < current:
                style = "#e0af68"
            else:
                style = "#565f89"
            out.append(char * cell, style=style)
        if row < height - 1:
            out.append("\n")
    return out


class GapSparkline(Widget):
    """A sparkline of the gap before each chunk."""

    gaps: reactive[tuple[float, ...]] = reactive(())
    position: reactive[int] = reactive(0)

    def render(self) -> RenderResult:
        return spark(list(self.gaps), self.size.width, self.position, max(1, self.size.height))


class StreamPane(Vertical):
    """Player for a streamed response: play / pause, step, speed."""

    position: reactive[int] = reactive(0, init=False)
    """Chunks shown so far (0 .. chunk count)."""
    playing: reactive[bool] = reactive(False, init=False)
    """True while the timer is running."""
    speed: reactive[float] = reactive(1.0, init=False)
    """Playback speed, a multiple of the recorded pace."""

    SPEEDS: ClassVar[tuple[float, ...]] = SPEEDS

    class Finished(Message):
        """Playback reached the last chunk."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.event: replay.Event | None = None
        self.pieces: list[str] = []
        self.gaps: list[float] = []
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="stream-status")
        yield GapSparkline(id="stream-spark")
        yield Static(id="stream-gapinfo")
        yield RenderedView(id="stream-text")

    @property
    def count(self) -> int:
        """Number of chunks of the loaded stream."""
        return len(self.pieces)

    def load(self, ev: replay.Event | None) -> None:
        """Show the stream of ``ev`` (paused, nothing played yet); same event: no change."""
        if ev is self.event and ev is not None:
            return
        self._stop_timer()
        self.playing = False
        self.event = ev
        live = ev is not None and streamed(ev)
        self.pieces = stream_pieces(ev) if ev is not None and live else []
        self.gaps = chunk_gaps_ms(ev) if ev is not None and live else []
        spark_widget = self.query_one(GapSparkline)
        spark_widget.gaps = tuple(self.gaps)
        if self.gaps:
            rest = self.gaps[1:] or self.gaps
            ms = 1_000_000
            info = (f"first chunk {fmt_duration(int(self.gaps[0] * ms))} · gaps median "
                    f"{fmt_duration(int(statistics.median(rest) * ms))}, max "
                    f"{fmt_duration(int(max(rest) * ms))} · total "
                    f"{fmt_duration(ev.chunks[-1].at_ns) if ev else '-'}")
        else:
            info = ""
        self.query_one("#stream-gapinfo", Static).update(Text(info, style="dim"))
        self.position = 0
        self._redraw()

    # --- controls --------------------------------------------------------------------

    def toggle(self) -> None:
        """Play or pause; playing at the end starts over."""
        if not self.pieces:
            return
        if self.playing:
            self.playing = False
            self._stop_timer()
            return
        if self.position >= self.count:
            self.position = 0
        self.playing = True
        self._schedule()

    def step(self, delta: int = 1) -> None:
        """Pause and show ``delta`` more (or fewer) chunks."""
        self.playing = False
        self._stop_timer()
        self.position = max(0, min(self.count, self.position + delta))

    def restart(self) -> None:
        """Back to before the first chunk, paused."""
        self.step(-self.count)

    def faster(self, up: bool = True) -> None:
        """Next (or previous) speed."""
        k = self.SPEEDS.index(self.speed) if self.speed in self.SPEEDS else 0
        k = min(len(self.SPEEDS) - 1, k + 1) if up else max(0, k - 1)
        self.speed = self.SPEEDS[k]

    def _schedule(self) -> None:
        self._stop_timer()
        if not self.playing:
            return
        if self.position >= self.count:
            self.playing = False
            self.post_message(self.Finished())
            return
        delay = self.gaps[self.position] / 1000 / self.speed
        self._timer = self.set_timer(max(delay, 0.001), self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self.playing:
            self.position = min(self.count, self.position + 1)
            self._schedule()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def watch_position(self) -> None:
        self._redraw()

    def watch_playing(self) -> None:
        self._redraw()

    def watch_speed(self) -> None:
        self._redraw()

    # --- display ---------------------------------------------------------------------

    def _redraw(self) -> None:
        status = self.query_one("#stream-status", Static)
        text = self.query_one("#stream-text", RenderedView)
        self.query_one(GapSparkline).position = self.position
        ev = self.event
        if ev is None or not self.pieces:
            if ev is None:
                what, why = "no event selected", ""
            elif ev.chunks:
                what = f"#{ev.seq} not streamed"
                why = ("The answer came whole, not as a stream: there is nothing to play. "
                       "1 Detail and 2 Conversation show it.")
            else:
                what, why = f"#{ev.seq} has no streamed response", ""
            status.update(Text(what, style="dim"), layout=False)
            text.show(Text(why, style="dim"))
            return
        n, pos = self.count, self.position
        at = ev.chunks[pos - 1].at_ns if pos else 0
        state = "▶ playing" if self.playing else ("■ done" if pos >= n else "❚❚ paused")
        status.update(Text.assemble(
            (f"#{ev.seq} ", "bold"), f"chunk {pos}/{n}  at {fmt_offset(at)}  ",
            (f"speed {self.speed:g}x  ", "#7dcfff"), (state, "bold")), layout=False)
        body = Text("".join(self.pieces[:max(0, pos - 1)]))
        if pos:
            body.append(self.pieces[pos - 1], style="reverse")
        if pos < n:
            body.append("▍", style="dim")
        text.show(body, end=True)
