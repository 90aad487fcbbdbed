"""`medloom view`: a terminal app over a run directory, live while the run is going."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Input, Static

from medloom.tui.help_screen import HelpScreen
from medloom.tui.index import TrajectoryIndex
from medloom.tui.item_list import FILTERS, ItemList
from medloom.tui.item_screen import ItemScreen
from medloom.tui.node_stats import NodeStatsScreen


class InspectApp(App[None]):
    """Items of a run with their status; open one to see its trajectory."""

    TITLE = "medloom view"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
        Binding("slash", "search", "search"),
        Binding("t", "cycle_filter", "filter"),
        Binding("s", "stats", "stats"),
        *(Binding(str(i + 1), f"filter('{name}')", name, show=False) for i, name in enumerate(FILTERS)),
    ]
    DEFAULT_CSS = """
    #bar { height: 1; background: $boost; padding: 0 1; }
    #search { display: none; height: 3; }
    #search.visible { display: block; }
    ItemList { height: 1fr; }
    """

    def __init__(self, run_dir: Path, *, poll_s: float = 1.0, use_cache: bool = True) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.poll_s = poll_s
        self.index = TrajectoryIndex(run_dir, use_cache=use_cache)
        if self.index.refresh():
            self.index.save()

    def compose(self) -> ComposeResult:
        yield Static(id="bar")
        yield Input(placeholder="search ids, nodes, reasons — Enter keeps, Esc clears", id="search")
        yield ItemList(self.index, id="items")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.run_dir.name
        self.update_bar()
        self.query_one(ItemList).focus()
        if self.poll_s > 0:
            self.set_interval(self.poll_s, self.poll)

    def on_unmount(self) -> None:
        self.index.save()

    def poll(self) -> None:
        """Pick up events a live run appended since the last look."""
        if self.index.refresh():
            self.query_one(ItemList).sync()
            self.update_bar()
            self.index.save(min_interval_s=30)
            if isinstance(self.screen, ItemScreen):
                self.screen.reload_if_grown()

    def update_bar(self) -> None:
        counts = self.index.counts()
        items = self.query_one(ItemList)
        parts = [
            f"{'[reverse]' if items.status_filter == name else ''}{name} "
            f"{len(self.index.items) if name == 'all' else counts.get(name, 0)}"
            f"{'[/reverse]' if items.status_filter == name else ''}"
            for name in FILTERS
        ]
        if self.index.skipped_rows:
            parts.append(f"[red]skipped rows {self.index.skipped_rows}[/]")
        if items.search:
            parts.append(f"search “{items.search}”: {len(items.view)}")
        parts.append(f"[dim]{self.run_dir.name}[/]")
        self.query_one("#bar", Static).update("  ".join(parts))

    # -- actions ----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """List actions (search, filters) only apply on the list screen."""
        return not (action in ("search", "filter", "cycle_filter") and len(self.screen_stack) > 1)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_stats(self) -> None:
        if not isinstance(self.screen, NodeStatsScreen):
            self.push_screen(NodeStatsScreen(self.run_dir))

    def action_filter(self, name: str) -> None:
        self.query_one(ItemList).set_filter(status=name)
        self.update_bar()

    def action_cycle_filter(self) -> None:
        current = self.query_one(ItemList).status_filter
        self.action_filter(FILTERS[(FILTERS.index(current) + 1) % len(FILTERS)])

    def action_search(self) -> None:
        search = self.query_one("#search", Input)
        search.add_class("visible")
        search.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one(ItemList).set_filter(query=event.value)
        self.update_bar()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(ItemList).focus()

    def on_key(self, event: object) -> None:
        key = getattr(event, "key", "")
        search = self.query_one("#search", Input)
        if key == "escape" and self.screen is self.screen_stack[0] and search.has_class("visible"):
            search.value = ""
            search.remove_class("visible")
            self.query_one(ItemList).focus()

    def on_item_list_opened(self, message: ItemList.Opened) -> None:
        self.push_screen(ItemScreen(self.index, message.item_id))
