"""The item list: a virtual list over the index that renders only the rows on screen."""

from __future__ import annotations

from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from medloom.tui.index import ItemEntry, TrajectoryIndex

STATUS_STYLE = {
    "kept": Style(color="green"),
    "rejected": Style(color="yellow"),
    "failed": Style(color="red", bold=True),
    "running": Style(color="cyan"),
}
FILTERS = ("all", "kept", "rejected", "failed", "running")


class ItemList(ScrollView, can_focus=True):
    """Items with status, node and reason; filter by status, search ids and reasons."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "up", show=False),
        Binding("down,j", "move(1)", "down", show=False),
        Binding("pageup", "page(-1)", "page up", show=False),
        Binding("pagedown", "page(1)", "page down", show=False),
        Binding("home,g", "jump(0)", "first", show=False),
        Binding("end,G", "jump(-1)", "last", show=False),
        Binding("enter", "open", "open item"),
    ]

    class Opened(Message):
        """The user opened an item."""

        def __init__(self, item_id: str) -> None:
            self.item_id = item_id
            super().__init__()

    def __init__(self, index: TrajectoryIndex, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.index = index
        self.status_filter = "all"
        self.search = ""
        self.view: list[int] = []
        self.cursor = 0
        self.rows_rendered = 0
        """How many rows render_line has drawn (a virtual list draws only visible ones)."""
        self.sync()

    # -- data -------------------------------------------------------------------------------

    def _matches(self, entry: ItemEntry) -> bool:
        if self.status_filter != "all" and entry.status != self.status_filter:
            return False
        if not self.search:
            return True
        q = self.search.lower()
        return (
            q in entry.item_id.lower() or q in (entry.reason or "").lower() or q in (entry.node or "").lower()
        )

    def sync(self) -> None:
        """Recompute the filtered view (after a filter change or new items), keeping the cursor's item."""
        current = self.current
        items = self.index.items
        if self.status_filter == "all" and not self.search:
            self.view = list(range(len(items)))
        else:
            self.view = [i for i, e in enumerate(items) if self._matches(e)]
        self.cursor = 0
        if current is not None:
            for pos, i in enumerate(self.view):
                if items[i].item_id == current.item_id:
                    self.cursor = pos
                    break
        self.virtual_size = Size(max(self.size.width, 60), len(self.view))
        self.refresh()

    def set_filter(self, status: str | None = None, query: str | None = None) -> None:
        if status is not None:
            self.status_filter = status
        if query is not None:
            self.search = query
        self.sync()

    @property
    def current(self) -> ItemEntry | None:
        if not getattr(self, "view", None) or self.cursor >= len(self.view):
            return None
        return self.index.items[self.view[self.cursor]]

    # -- actions ----------------------------------------------------------------------------

    def _set_cursor(self, pos: int) -> None:
        if not self.view:
            return
        self.cursor = max(0, min(len(self.view) - 1, pos))
        top = int(self.scroll_y)
        height = max(1, self.scrollable_content_region.height)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False)
        self.refresh()

    def action_move(self, delta: int) -> None:
        self._set_cursor(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self._set_cursor(self.cursor + direction * max(1, self.scrollable_content_region.height - 1))

    def action_jump(self, where: int) -> None:
        self._set_cursor(0 if where == 0 else len(self.view) - 1)

    def action_open(self) -> None:
        if self.current is not None:
            self.post_message(self.Opened(self.current.item_id))

    def on_click(self, event: events.Click) -> None:
        """A click selects a row; a double click opens it."""
        self._set_cursor(event.y + int(self.scroll_y))
        if event.chain >= 2:
            self.action_open()

    # -- rendering --------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        row = y + int(self.scroll_y)
        width = self.scrollable_content_region.width
        if row >= len(self.view):
            return Strip.blank(width)
        self.rows_rendered += 1
        entry = self.index.items[self.view[row]]
        base = Style(reverse=True) if row == self.cursor and self.has_focus else Style()
        if row == self.cursor and not self.has_focus:
            base = Style(underline=True)
        reason = (entry.reason or "").replace("\n", " ")
        if entry.status == "kept" and entry.answer:
            reason = f"answer {entry.answer}" + (f" ({entry.rows} rows)" if entry.rows > 1 else "")
        id_w = min(28, max(12, width // 3))
        segments = [
            Segment(f"{entry.ordinal + 1:>6} ", base + Style(dim=True)),
            Segment(f"{entry.status:<9}", base + STATUS_STYLE.get(entry.status, Style())),
            Segment(f"{entry.item_id[:id_w]:<{id_w}} ", base),
            Segment(f"{(entry.node or '')[:10]:<10} ", base + Style(color="magenta")),
            Segment(reason, base),
        ]
        return Strip(segments).crop_extend(0, width, base)
