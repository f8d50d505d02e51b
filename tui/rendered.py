"""A scrollable view of one Rich renderable, rendered once per content and width.

A ``Static`` inside a scroll container re-renders its content for every
measure and layout pass, and a new height means a layout of the whole screen.
This Line API view renders to strips once when the content (or its width)
changes and then only copies lines, so stepping through events stays cheap.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

HIT = Style(color="#1a1b26", bgcolor="#e0af68", bold=True)
"""How a search hit is highlighted."""


class RenderedView(ScrollView, can_focus=False, inherit_bindings=False):
    """Shows a renderable; :meth:`show` replaces it."""

    DEFAULT_CSS = """
    RenderedView {
        overflow-x: hidden;
        overflow-y: scroll;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.content: RenderableType = Text("")
        """What is shown."""
        self._strips: list[Strip] = []
        self._width = 0
        self._end = False
        self._blank = Strip.blank(0)
        self.find = ""
        """Text to highlight (case-insensitive; the search): the view opens at its first hit."""
        self.hits: list[int] = []
        """Lines holding :attr:`find`."""

    def show(self, content: RenderableType, *, end: bool = False) -> None:
        """Show ``content`` from its top (``end``: from its bottom)."""
        self.content = content
        self._width = 0
        self._end = end
        self._render_strips()
        self._scroll_start()
        self.refresh()

    def _scroll_start(self) -> None:
        height = self.scrollable_content_region.height
        if self.hits:  # the first hit, a little below the top
            top = max(0, min(self.hits[0] - 2, len(self._strips) - height))
        else:
            top = max(0, len(self._strips) - height) if self._end else 0
        self.scroll_to(y=top, animate=False, immediate=True)

    @property
    def lines(self) -> list[str]:
        """The rendered lines as plain text (for tests)."""
        return [strip.text for strip in self._strips]

    def _render_strips(self) -> None:
        width = self.scrollable_content_region.width
        if width <= 0:
            return
        if width == self._width:
            return
        console = self.app.console
        options = console.options.update(width=width, min_width=width, max_width=width,
                                         highlight=False)
        lines = console.render_lines(self.content, options, pad=False)
        base = self.rich_style
        self._blank = Strip.blank(width, base)
        self._strips = [Strip(Segment.apply_style(line, style=base)).crop_extend(0, width, base)
                        for line in lines]
        self.hits = []
        if self.find:
            self._mark(self.find.lower())
        self._width = width
        self._set_virtual_size(Size(width, len(self._strips)))

    def _mark(self, needle: str) -> None:
        """Highlight every occurrence of ``needle`` (lowercase) and note their lines."""
        for y, strip in enumerate(self._strips):
            text = strip.text.lower()
            if needle not in text:
                continue
            self.hits.append(y)
            cuts, at = [], text.find(needle)
            while at >= 0:
                cuts += [cell_len(strip.text[:at]), cell_len(strip.text[:at + len(needle)])]
                at = text.find(needle, at + len(needle))
            parts = strip.divide([*cuts, strip.cell_length])
            self._strips[y] = Strip.join(
                Strip(Segment.apply_style(part, post_style=HIT)) if k % 2 else part
                for k, part in enumerate(parts))

    def _set_virtual_size(self, size: Size) -> None:
        """Change the scroll range without a layout of the whole screen.

        Assigning ``virtual_size`` asks for a layout pass, the main cost of
        stepping through events; the scrollbar is always shown (tcss), so only
        the scroll range changes and updating the scrollbars is enough.
        """
        update = getattr(self, "_scroll_update", None)
        if size == self.virtual_size:
            return
        if update is None or self.styles.overflow_y != "scroll":
            self.virtual_size = size
            return
        self.set_reactive(Widget.virtual_size, size)
        update(size)

    def on_resize(self, event: events.Resize) -> None:
        self._render_strips()
        self._scroll_start()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._width = 0  # render again with the new base style

    def render_line(self, y: int) -> Strip:
        self._render_strips()
        row = round(self.scroll_y) + y
        if row >= len(self._strips):
            return self._blank
        return self._strips[row]
