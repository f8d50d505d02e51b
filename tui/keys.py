"""The main screen's key map (shown by ``?`` and listed in docs/tui.md)."""

from __future__ import annotations

from textual.binding import Binding, BindingType

MAIN_KEYS: list[BindingType] = [
    Binding("j,down", "move(1)", "Next event", show=False),
    Binding("k,up", "move(-1)", "Previous event", show=False),
    Binding("g,home", "first", "First event", show=False),
    Binding("G,end", "last", "Last event", show=False),
    Binding("pagedown,ctrl+f", "page(1)", "Page down", show=False),
    Binding("pageup,ctrl+b", "page(-1)", "Page up", show=False),
    Binding("slash", "search", "Search"),
    Binding("n", "match(1)", "Next match"),
    Binding("N", "match(-1)", "Previous match", show=False),
    Binding("escape", "clear_search", "Clear search", show=False),
    Binding("f", "filter_channels", "Channels"),
    Binding("F", "filter_flag", "Flag filter"),
    Binding("x", "clear_filter", "Clear filters", show=False),
    Binding("e", "jump('error', 1)", "Next error"),
    Binding("E", "jump('error', -1)", "Previous error", show=False),
    Binding("v", "jump('divergence', 1)", "Next divergence", show=False),
    Binding("V", "jump('divergence', -1)", "Previous divergence", show=False),
    Binding("d", "jump('drift', 1)", "Next drift", show=False),
    Binding("D", "jump('drift', -1)", "Previous drift", show=False),
    Binding("m", "model_call(1)", "Next model call", show=False),
    Binding("M", "model_call(-1)", "Previous model call", show=False),
    Binding("1", "tab('detail')", "Detail tab", show=False),
    Binding("2", "tab('conversation')", "Conversation tab", show=False),
    Binding("3", "tab('stream')", "Stream tab", show=False),
    Binding("J", "scroll_pane(1)", "Scroll right pane down", show=False),
    Binding("K", "scroll_pane(-1)", "Scroll right pane up", show=False),
    Binding("space", "stream_toggle", "Stream play / pause", show=False),
    Binding("full_stop", "stream_step(1)", "Stream: next chunk", show=False),
    Binding("comma", "stream_step(-1)", "Stream: previous chunk", show=False),
    Binding("plus", "stream_speed(1)", "Stream faster", show=False),
    Binding("minus", "stream_speed(-1)", "Stream slower", show=False),
    Binding("0", "stream_restart", "Stream from the start", show=False),
    Binding("less_than_sign", "split(-1)", "Narrower timeline", show=False),
    Binding("greater_than_sign", "split(1)", "Wider timeline", show=False),
    Binding("h", "all_headers", "Show / collapse SDK headers", show=False),
    Binding("z", "noise", "Show / hide noise differences", show=False),
    Binding("c", "compare", "Diff"),
    Binding("s", "stats", "Stats"),
    Binding("question_mark", "help", "Help"),
    Binding("q", "app.quit", "Quit"),
]
"""Every key of the main screen; the footer shows those with ``show`` left on."""
