"""The viewer's main screens at 80×24, pinned as SVG snapshots (update: pytest --snapshot-update)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medloom.tui.app import InspectApp

SIZE = (80, 24)


def test_item_list_screen(snap_compare: Any, snapshot_run: Path) -> None:
    assert snap_compare(InspectApp(snapshot_run, poll_s=0, use_cache=False), terminal_size=SIZE)


def test_rejected_item_with_a_revision_diff(snap_compare: Any, snapshot_run: Path) -> None:
    app = InspectApp(snapshot_run, poll_s=0, use_cache=False)
    assert snap_compare(app, terminal_size=SIZE, press=["3", "enter", "d"])


def test_call_detail(snap_compare: Any, snapshot_run: Path) -> None:
    app = InspectApp(snapshot_run, poll_s=0, use_cache=False)
    assert snap_compare(app, terminal_size=SIZE, press=["2", "enter", "down", "down"])


def test_help_screen(snap_compare: Any, snapshot_run: Path) -> None:
    assert snap_compare(InspectApp(snapshot_run, poll_s=0, use_cache=False), terminal_size=SIZE, press=["?"])
