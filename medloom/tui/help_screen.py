"""The key reference, shown on `?`."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = [
    ("Item list", ""),
    ("↑/↓ j/k, PgUp/PgDn, g/G", "move, page, first/last"),
    ("Enter, double click", "open the item's trajectory"),
    ("/", "search ids, nodes and reasons (Enter keeps it, Esc clears)"),
    ("1 2 3 4 5 / t", "show all / kept / rejected / failed / running; t cycles"),
    ("s", "run statistics (per node, round, model)"),
    ("Trajectory", ""),
    ("↑/↓, Enter/Space", "move in the tree, fold a branch"),
    ("d", "next revision (shown as a diff)"),
    ("f", "next verdict that flags steps"),
    ("Esc / Backspace", "back to the list"),
    ("Anywhere", ""),
    ("?", "this help"),
    ("q", "quit"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss", "close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 76; max-height: 22; border: round $accent; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in KEYS:
            if not what:
                table.add_row(f"[bold underline]{key}[/]", "")
            else:
                table.add_row(key, what)
        with VerticalScroll():
            yield Static(table, id="help-keys")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
