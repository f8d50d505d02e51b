"""The detail pane: everything recorded about the selected event."""

from __future__ import annotations

import linecache
import os
from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

import replay
from tui.model import GLYPHS, fmt_duration, fmt_offset
from tui.payloads import body_of, headers_of, provider
from tui.render import highlight, json_block
from tui.rendered import RenderedView


def _heading(title: str) -> Text:
    return Text(f"─ {title} ", style="bold #7aa2f7")


def source_line(site: replay.CallSite) -> str | None:
    """The line of source at ``site`` when the file can be read, else None."""
    if not os.path.isfile(site.file):
        return None
    line = linecache.getline(site.file, site.line)
    return line.rstrip("\n") or None


def _headers(part: Any) -> Table | None:
    pairs = headers_of(part)
    if not pairs:
        return None
    table = Table.grid(padding=(0, 1))
    table.add_column(style="#9ece6a", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in pairs:
        table.add_row(f"{name}:", value)
    return table


def _http_part(title: str, part: dict[str, Any], first: str) -> list[RenderableType]:
    out: list[RenderableType] = [_heading(title), Text(first, style="bold")]
    head = _headers(part)
    if head is not None:
        out.append(head)
    body = body_of(part)
    if body is not None:
        out.append(Text("body", style="dim"))
        out += json_block(body)
    rest = {k: v for k, v in part.items() if k not in ("method", "url", "status", "headers",
                                                       "body")}
    if rest:
        out += json_block(rest)
    return out


def detail(ev: replay.Event, flags: set[str], children: int = 0,
           notes: Sequence[str] = ()) -> RenderableType:
    """The renderable shown in the detail pane for ``ev`` (``notes``: findings about it)."""
    parts: list[RenderableType] = []
    title = Text.assemble((f"#{ev.seq} ", "bold"), (ev.channel, "bold #7dcfff"),
                          f"  task {ev.task}  at {fmt_offset(ev.start_ns)}"
                          f"  took {fmt_duration(ev.duration_ns)}")
    for f in sorted(flags):
        title.append(f"  {GLYPHS.get(f, '*')} {f}", style="bold red" if f == "error"
                     else "bold yellow")
    parts.append(title)
    if ev.parent is not None:
        parts.append(Text(f"nested inside #{ev.parent} (replay serves the parent whole)",
                          style="dim"))
    if children:
        parts.append(Text(f"{children} nested event(s) recorded inside this one", style="dim"))
    if notes:
        parts.append(_heading("findings"))
        parts += [Text(f"• {n}", style="#bb9af7") for n in notes]
    if ev.site is not None:
        parts.append(_heading("call site"))
        parts.append(Text.assemble((ev.site.file, "#e0af68"), f":{ev.site.line}",
                                   "  in ", (ev.site.function, "bold")))
        src = source_line(ev.site)
        if src is None:
            parts.append(Text("(source file not readable here)", style="dim italic"))
        else:
            parts.append(highlight(f"{ev.site.line:>5} │ {src.strip()}", "python"))
    parts += _usage(ev)
    req, res = ev.request, ev.response
    if ev.channel == "http" and isinstance(req, dict) and "url" in req:
        parts += _http_part("request", req, f"{req.get('method', '?')!s} {req.get('url')!s}")
    else:
        parts += [_heading("request"), *json_block(req)]
    if ev.error is not None:
        parts.append(_heading("raised"))
        parts.append(Text(str(ev.error), style="bold red"))
        if ev.error.traceback:
            parts.append(highlight(ev.error.traceback.rstrip(), "pytb"))
    elif ev.channel == "http" and isinstance(res, dict) and "status" in res:
        parts += _http_part("response", res, f"status {res.get('status')!s}")
    elif res is not None or not ev.chunks:
        parts += [_heading("response"), *json_block(res)]
    if ev.chunks:
        size = sum(len(c.data) for c in ev.chunks)
        parts.append(_heading("stream"))
        parts.append(Text(f"{len(ev.chunks)} chunks, {size} bytes over "
                          f"{fmt_duration(ev.chunks[-1].at_ns)}; press 3 to play it back"))
    if ev.meta:
        parts += [_heading("meta"), *json_block(dict(ev.meta), 40)]
    return Group(*parts)


def _usage(ev: replay.Event) -> list[RenderableType]:
    call = replay.model_call(ev) if provider(ev) is not None else None
    if call is None:
        return []
    model = call.served_model or call.model
    out: list[RenderableType] = [_heading("model call")]
    line = Text.assemble(("api ", "dim"), f"{call.provider} {call.api}", ("  model ", "dim"),
                         (str(model), "bold"))
    if call.model and call.served_model and call.model != call.served_model:
        line.append(f"  (asked for {call.model})", style="dim")
    if call.streamed:
        line.append("  streamed", style="dim")
    out.append(line)
    usage = call.usage
    if usage is None:
        out.append(Text("no usage reported", style="dim"))
        return out
    tokens = Text.assemble(("tokens ", "dim"), f"{usage.input_tokens} in",
                           f" ({usage.cached_tokens} cached)" if usage.cached_tokens else "",
                           f" + {usage.output_tokens} out = {usage.total_tokens}")
    tokens.append("  cost ", style="dim")
    tokens.append(f"≈ ${usage.cost_usd:.5f}" if usage.cost_usd is not None
                  else "unknown (model not in the price table)")
    out.append(tokens)
    return out


class DetailPane(RenderedView):
    """Scrollable detail of one event."""

    def show_event(self, ev: replay.Event | None, flags: set[str], children: int = 0,
                   notes: Sequence[str] = ()) -> None:
        """Show ``ev`` (None: nothing selected)."""
        self.show(Text("no event selected", style="dim") if ev is None
                  else detail(ev, flags, children, notes))
