"""The conversation tab: what the model saw at the selected call, as a chat."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

import replay
from tui.chat import Conversation, Turn, conversation
from tui.rendered import RenderedView

ROLE_STYLES = {
    "system": "#a9b1d6",
    "user": "#7aa2f7",
    "assistant": "#9ece6a",
    "tool": "#e0af68",
    "error": "#f7768e",
}
MAX_TURN_LINES = 60
"""Longest message shown in full; longer ones are cut with a note."""


def _body(turn: Turn) -> Text:
    text = turn.text
    lines = text.split("\n")
    if len(lines) > MAX_TURN_LINES:
        text = "\n".join(lines[:MAX_TURN_LINES]) + f"\n… {len(lines) - MAX_TURN_LINES} more lines"
    out = Text(text)
    for call in turn.calls:
        if out:
            out.append("\n")
        out.append("→ ", style="bold #e0af68")
        out.append(call.name, style="bold")
        out.append(f"({call.arguments})", style="#c0caf5")
        if call.id:
            out.append(f"  {call.id}", style="dim")
    if not out:
        out = Text("(empty)", style="dim italic")
    return out


def bubble(turn: Turn, number: int) -> Panel:
    """One message as a titled panel, coloured by role."""
    color = ROLE_STYLES.get(turn.role, "#c0caf5")
    title = f"[{number}] {turn.role}"
    if turn.role == "tool":
        title += f" · {turn.name or 'result'}"
        if turn.call_id:
            title += f" ({turn.call_id})"
        if turn.error:
            title += " · error"
            color = ROLE_STYLES["error"]
    if turn.answer:
        title = f"{turn.role} · answer at this step"
        if turn.role == "assistant":  # the colour says who; say how it came
            title = "answer at this step · " + ("streamed" if turn.streamed else "not streamed")
    return Panel(_body(turn), title=title, title_align="left", border_style=color,
                 expand=True, padding=(0, 1))


def render_conversation(conv: Conversation, ev: replay.Event) -> RenderableType:
    """The whole chat of ``conv`` (from event ``ev``)."""
    head = Text.assemble((f"#{ev.seq} ", "bold"), (conv.provider, "bold #7dcfff"),
                         f"  model {conv.model}  ·  {sum(1 for t in conv.turns if not t.answer)}"
                         " messages")
    if conv.tools:
        head.append(f"  ·  tools: {', '.join(conv.tools)}", style="dim")
    items: list[RenderableType] = [head]
    items += [bubble(t, n) for n, t in enumerate(conv.turns, 1)]
    return Group(*items)


class ConversationPane(RenderedView):
    """Scrollable chat view of a model call, opened at its end (the latest turn)."""

    def show_event(self, ev: replay.Event | None) -> None:
        """Render the conversation of ``ev``, or say why there is none."""
        conv = conversation(ev) if ev is not None else None
        if ev is None or conv is None:
            what = "no event selected" if ev is None else f"#{ev.seq} is not a model call"
            self.show(Text(f"{what}; press m / M for the next / previous model call",
                           style="dim"))
        else:
            self.show(render_conversation(conv, ev), end=True)
