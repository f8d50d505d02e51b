"""Small modal screens: the help screen and the channel filter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, SelectionList, Static
from textual.widgets.selection_list import Selection


def key_label(key: str) -> str:
    """How a binding's keys are shown: ``j, down`` -> ``j ↓``."""
    names = {"down": "↓", "up": "↑", "left": "←", "right": "→", "pagedown": "PgDn",
             "pageup": "PgUp", "home": "Home", "end": "End", "escape": "Esc",
             "space": "Space", "enter": "Enter", "question_mark": "?", "slash": "/",
             "full_stop": ".", "comma": ",", "plus": "+", "minus": "-", "tab": "Tab",
             "less_than_sign": "<", "greater_than_sign": ">", "left_square_bracket": "[",
             "right_square_bracket": "]"}
    out = []
    for k in key.split(","):
        k = k.strip()
        out.append(names.get(k, k.replace("ctrl+", "^")))
    return " ".join(out)


def binding_rows(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    """(keys, description) for every binding, in declaration order."""
    rows = []
    for b in bindings:
        if isinstance(b, Binding):
            key, desc = b.key, b.tooltip or b.description
        else:
            key, desc = b[0], b[2] if len(b) > 2 else b[1]
        rows.append((key_label(key), desc or ""))
    return rows


class HelpScreen(ModalScreen[None]):
    """Every key binding, grouped by screen."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close help"),
        Binding("j,down", "scroll(1)", "Scroll down", show=False),
        Binding("k,up", "scroll(-1)", "Scroll up", show=False),
    ]

    def __init__(self, groups: Sequence[tuple[str, Iterable[BindingType]]]) -> None:
        super().__init__()
        self.groups = [(title, binding_rows(b)) for title, b in groups]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Label("Keys  (Esc closes)", id="help-title")
            with VerticalScroll(id="help-scroll"):
                for title, rows in self.groups:
                    table = Table(title=title, title_justify="left", title_style="bold #7aa2f7",
                                  show_header=False, box=None, padding=(0, 2))
                    table.add_column(style="bold #e0af68", no_wrap=True, width=14)
                    table.add_column()
                    for keys, desc in rows:
                        table.add_row(keys, desc)
                    yield Static(table, classes="help-group")

    def action_scroll(self, delta: int) -> None:
        self.query_one("#help-scroll", VerticalScroll).scroll_relative(y=delta, animate=False)


class ChannelFilter(ModalScreen[frozenset[str] | None]):
    """Pick the channels to show; Enter applies, Esc cancels (none picked: all)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "apply", "Apply", priority=True),
        Binding("escape", "cancel", "Cancel"),
        Binding("a", "all", "All / none"),
    ]

    def __init__(self, counts: Mapping[str, int], chosen: frozenset[str]) -> None:
        super().__init__()
        self.counts = dict(sorted(counts.items()))
        self.chosen = chosen

    def compose(self) -> ComposeResult:
        with Vertical(id="filter-box"):
            yield Label("Show channels", id="filter-title")
            yield Label("Space toggle · Enter apply · a all/none · Esc cancel\n"
                        "(none picked shows every channel)", id="filter-hint")
            yield SelectionList[str](*(
                Selection(Text.assemble(f"{ch:<24}", (f"{n:>8}", "dim")), ch, ch in self.chosen)
                for ch, n in self.counts.items()), id="filter-list")

    def action_apply(self) -> None:
        self.dismiss(frozenset(self.query_one(SelectionList).selected))

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_all(self) -> None:
        sel: SelectionList[str] = self.query_one(SelectionList)
        if sel.selected:
            sel.deselect_all()
        else:
            sel.select_all()
