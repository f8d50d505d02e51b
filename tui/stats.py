"""The stats screen: events per channel, model calls per model, tokens, latency."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

import replay
from tui.model import RunModel, fmt_duration
from tui.payloads import provider

BUCKETS: tuple[tuple[str, int], ...] = (
    ("<1ms", 1_000_000), ("1-10ms", 10_000_000), ("10-100ms", 100_000_000),
    ("0.1-1s", 1_000_000_000), ("1-10s", 10_000_000_000), (">10s", 2**63),
)
"""Latency histogram buckets: label and exclusive upper bound in ns."""


NO_USAGE = replay.Usage(calls=0, cost_usd=0.0)


@dataclass
class ModelStats:
    """Calls to one model."""

    calls: int = 0
    errors: int = 0
    usage: replay.Usage = NO_USAGE
    """Summed over the calls that reported usage (``cost_usd`` None: some price unknown)."""
    latencies: list[int] = field(default_factory=list)


@dataclass
class RunStats:
    """Figures of one run."""

    events: int = 0
    span_ns: int = 0
    errors: int = 0
    channels: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[int]] = field(default_factory=dict)
    models: dict[str, ModelStats] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)


def compute(model: RunModel) -> RunStats:
    """Count everything once (use a worker for big runs)."""
    st = RunStats(events=len(model), channels=Counter(model.channels),
                  flags=model.flag_counts())
    for ev in model.events:
        st.span_ns = max(st.span_ns, ev.start_ns + ev.duration_ns)
        st.latencies.setdefault(ev.channel, []).append(ev.duration_ns)
        if ev.error is not None:
            st.errors += 1
        if ev.channel == "http" and provider(ev) is not None:
            _model_call(st, ev)
    for lat in st.latencies.values():
        lat.sort()
    for ms in st.models.values():
        ms.latencies.sort()
    return st


def _model_call(st: RunStats, ev: replay.Event) -> None:
    call = replay.model_call(ev)
    if call is None:
        return
    name = call.served_model or call.model or "?"
    ms = st.models.setdefault(name, ModelStats())
    ms.calls += 1
    ms.latencies.append(ev.duration_ns)
    if ev.error is not None or (call.status is not None and call.status >= 400):
        ms.errors += 1
    elif call.usage is not None:
        ms.usage = ms.usage + call.usage


def percentile(sorted_ns: list[int], p: float) -> int:
    """The ``p``-th percentile (nearest rank) of sorted values."""
    if not sorted_ns:
        return 0
    k = min(len(sorted_ns) - 1, max(0, round(p / 100 * len(sorted_ns) + 0.5) - 1))
    return sorted_ns[k]


def histogram(sorted_ns: list[int]) -> list[int]:
    """Counts per :data:`BUCKETS` bucket."""
    out = [0] * len(BUCKETS)
    for v in sorted_ns:
        for b, (_label, top) in enumerate(BUCKETS):
            if v < top:
                out[b] += 1
                break
    return out


def _bar(n: int, top: int, width: int = 12) -> Text:
    filled = 0 if top == 0 else round(n / top * width)
    return Text.assemble(("█" * filled, "#7aa2f7"), ("·" * (width - filled), "#3b4261"))


_TABLE: dict[str, Any] = {"title_justify": "left", "expand": True, "box": box.SIMPLE_HEAD,
                          "title_style": "bold #7aa2f7"}


def render(st: RunStats) -> RenderableType:
    """All the tables of the stats screen."""
    head = Text.assemble((f"{st.events:,} events", "bold"), f" over {fmt_duration(st.span_ns)}",
                         f"  ·  {st.errors} raised", "  ·  flags: ",
                         ", ".join(f"{n} {f}" for f, n in sorted(st.flags.items())) or "none")
    chans = Table(title="Events per channel", **_TABLE)
    for col in ("channel", "events", "share", "p50", "p90", "p99", "max"):
        chans.add_column(col, justify="left" if col == "channel" else "right")
    top = max(st.channels.values(), default=0)
    for ch, n in st.channels.most_common():
        lat = st.latencies.get(ch, [])
        chans.add_row(ch, f"{n:,}", _bar(n, top), *(fmt_duration(percentile(lat, p))
                                                     for p in (50, 90, 99, 100)))
    models = Table(title="Model calls per model", **_TABLE)
    for col in ("model", "calls", "errors", "input tok", "output tok", "cached", "cost ≈",
                "p50", "max"):
        models.add_column(col, justify="left" if col == "model" else "right")
    total = NO_USAGE
    for name, ms in sorted(st.models.items()):
        total = total + ms.usage
        u = ms.usage
        models.add_row(name, str(ms.calls), str(ms.errors), f"{u.input_tokens:,}",
                       f"{u.output_tokens:,}", f"{u.cached_tokens:,}", _money(u.cost_usd),
                       fmt_duration(percentile(ms.latencies, 50)),
                       fmt_duration(percentile(ms.latencies, 100)))
    if st.models:
        models.add_row(Text("all", style="bold"), str(sum(m.calls for m in st.models.values())),
                       str(sum(m.errors for m in st.models.values())),
                       f"{total.input_tokens:,}", f"{total.output_tokens:,}",
                       f"{total.cached_tokens:,}", _money(total.cost_usd), "", "",
                       style="bold")
    hist = Table(title="Latency distribution (events per duration bucket)",
                 **_TABLE)
    hist.add_column("channel")
    for label, _top in BUCKETS:
        hist.add_column(label, justify="right")
    for ch, _n in st.channels.most_common():
        hist.add_row(ch, *(str(c) if c else "·" for c in histogram(st.latencies.get(ch, []))))
    parts: list[RenderableType] = [head, Text(""), chans, Text(""), models if st.models
                                   else Text("no model calls", style="dim"), Text(""), hist,
                                   Text("costs are list-price estimates", style="dim italic")]
    return Group(*parts)


def _money(cost: float | None) -> str:
    return "?" if cost is None else f"${cost:.5f}"


class StatsScreen(Screen[None]):
    """Figures of the run; Esc goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,s", "app.pop_screen", "Back"),
        Binding("j,down", "scroll(1)", "Scroll down", show=False),
        Binding("k,up", "scroll(-1)", "Scroll up", show=False),
        Binding("question_mark", "app.open_help", "Help"),
    ]

    def __init__(self, model: RunModel, title: str) -> None:
        super().__init__()
        self.model = model
        self.title_text = title
        self.stats: RunStats | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text.from_markup(f"Stats · {self.title_text}"), id="title")
        with VerticalScroll(id="stats-scroll"):
            yield Static(Text("counting…", style="dim"), id="stats-body")
        yield Footer()

    def on_mount(self) -> None:
        self._count()

    @work(thread=True, exclusive=True, group="stats")
    def _count(self) -> None:
        stats = compute(self.model)
        self.app.call_from_thread(self._show, stats)

    def _show(self, stats: RunStats) -> None:
        self.stats = stats
        self.query_one("#stats-body", Static).update(render(stats))

    def action_scroll(self, delta: int) -> None:
        self.query_one("#stats-scroll", VerticalScroll).scroll_relative(y=delta, animate=False)
