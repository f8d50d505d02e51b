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
from tui.payloads import (
    BOILERPLATE_PREFIXES,
    body_of,
    headers_of,
    is_boilerplate_header,
    provider,
    response_body,
    streamed,
)
from tui.render import highlight, json_block, pair_changes
from tui.rendered import RenderedView


def _heading(title: str) -> Text:
    return Text(f"─ {title} ", style="bold #7aa2f7")


def source_line(site: replay.CallSite) -> str | None:
    """The line of source at ``site`` when the file can be read, else None."""
    if not os.path.isfile(site.file):
        return None
    line = linecache.getline(site.file, site.line)
    return line.rstrip("\n") or None


def _headers(part: Any, show_all: bool = False) -> list[RenderableType]:
    """The headers, SDK boilerplate (``x-stainless-*``, rate limits, dates, request
    ids) collapsed into one line unless ``show_all``."""
    pairs = headers_of(part)
    if not pairs:
        return []
    kept = pairs if show_all else [(n, v) for n, v in pairs if not is_boilerplate_header(n)]
    out: list[RenderableType] = [Text("headers", style="dim")]
    if kept:
        table = Table.grid(padding=(0, 1))
        table.add_column(style="#9ece6a", no_wrap=True)
        table.add_column(overflow="fold")
        for name, value in kept:
            table.add_row(f"{name}:", value)
        out.append(table)
    hidden = [] if show_all else [n for n, _v in pairs if is_boilerplate_header(n)]
    if hidden:
        names = ", ".join(sorted({_family(n) for n in hidden}))
        out.append(Text(f"+ {len(hidden)} SDK/server boilerplate header"
                        f"{'s' * (len(hidden) != 1)} ({names}); h shows them",
                        style="dim italic"))
    return out


def _family(name: str) -> str:
    low = name.lower()
    for prefix in BOILERPLATE_PREFIXES:
        if low.startswith(prefix):
            return prefix + "*"
    return low


def _http_part(title: str, part: dict[str, Any], first: str, body: Any,
               show_all: bool, how: str = "") -> list[RenderableType]:
    """Request or response: the first line, the body, then the headers."""
    out: list[RenderableType] = [_heading(title), Text(first, style="bold")]
    if body is not None:
        out.append(Text(f"body{how}", style="dim"))
        out += json_block(body)
    rest = {k: v for k, v in part.items() if k not in ("method", "url", "status", "headers",
                                                       "body", "reason", "http_version")}
    if rest:
        out += json_block(rest)
    out += _headers(part, show_all)
    return out


def _note(note: str) -> list[RenderableType]:
    """A finding: its sentence, then its diff (the lines after the first) when it has one."""
    head, _, rest = note.partition("\n")
    out: list[RenderableType] = [Text(f"• {head}", style="#bb9af7")]
    if rest.strip():
        out.append(highlight(rest.rstrip(), "diff"))
    return out


def detail(ev: replay.Event, flags: set[str], children: int = 0,
           notes: Sequence[str] = (), *, all_headers: bool = False,
           compare: Sequence[RenderableType] = (),
           extra: Sequence[RenderableType] = ()) -> RenderableType:
    """The renderable shown in the detail pane for ``ev`` (``notes``: findings about it,
    ``all_headers``: do not collapse boilerplate headers, ``compare``: how it differs
    from the other run, shown after the findings; ``extra``: sections shown after the
    model call, such as its context diff)."""
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
        for n in notes:
            parts += _note(n)
    parts += compare
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
    parts += extra
    req, res = ev.request, ev.response
    if ev.channel == "http" and isinstance(req, dict) and "url" in req:
        parts += _http_part("request", req, f"{req.get('method', '?')!s} {req.get('url')!s}",
                            body_of(req), all_headers)
    else:
        parts += [_heading("request"), *json_block(req)]
    if ev.error is not None:
        parts.append(_heading("raised"))
        parts.append(Text(str(ev.error), style="bold red"))
        if ev.error.traceback:
            parts.append(highlight(ev.error.traceback.rstrip(), "pytb"))
    elif ev.channel == "http" and isinstance(res, dict) and "status" in res:
        whole = not streamed(ev)
        first = f"status {res.get('status')!s}"
        reason = res.get("reason")
        if isinstance(reason, str):
            first += f" {reason}"
        parts += _http_part("response", res, first, response_body(ev) if whole else
                            body_of(res), all_headers, " (not streamed)" if ev.chunks and whole
                            else "")
    elif res is not None or not ev.chunks:
        parts += [_heading("response"), *json_block(res)]
    if streamed(ev):
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
    line.append("  streamed" if call.streamed else "  not streamed", style="dim")
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


def pair_section(pair: replay.AlignedPair, other: str, show_noise: bool = False
                 ) -> list[RenderableType]:
    """How the event differs from its partner in the other run (its diff)."""
    right = pair.right
    kind = "noise only" if pair.is_noise else pair.kind.value
    where = f"#{right.seq}" if right is not None else "(no partner)"
    out: list[RenderableType] = [_heading(f"vs {other} {where} · {kind}")]
    out += pair_changes(pair, show_noise, limit=20)
    for title, text in (("prompt", pair.prompt_diff), ("answer", pair.output_diff)):
        if text:
            out.append(Text(f"{title} text diff", style="bold #7aa2f7"))
            out.append(highlight(text.rstrip(), "diff"))
    return out


class DetailPane(RenderedView):
    """Scrollable detail of one event."""

    def show_event(self, ev: replay.Event | None, flags: set[str], children: int = 0,
                   notes: Sequence[str] = (), *, all_headers: bool = False,
                   compare: Sequence[RenderableType] = (),
                   extra: Sequence[RenderableType] = ()) -> None:
        """Show ``ev`` (None: nothing selected)."""
        self.show(Text("no event selected", style="dim") if ev is None
                  else detail(ev, flags, children, notes, all_headers=all_headers,
                              compare=compare, extra=extra))
