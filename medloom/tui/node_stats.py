"""Per-node statistics of the run (the tables of `medloom stats`), on `s`."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from medloom.runs.fold import compute_stats
from medloom.runs.rundir import RunDir
from medloom.tui.stats_tables import render_stats


class NodeStatsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,s,backspace", "app.pop_screen", "back")]

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="stats-scroll"):
            yield Static(render_stats(compute_stats(RunDir(self.run_dir))), id="stats")
        yield Footer()
