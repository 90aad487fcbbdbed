"""The viewer's main screens at 80×24, pinned as SVG snapshots (update: pytest --snapshot-update)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from medloom.runs.store import TRAJECTORIES
from medloom.tui.app import InspectApp
from tests.inspect.conftest import normalise_for_snapshots

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


def _order_concurrent_calls(path: Path) -> None:
    """Sort consecutive LLM calls of one agent by prompt: parallel calls land in completion order."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]

    def key(i: int) -> tuple[int, str]:
        event = lines[i]
        if event["type"] != "llm_call":
            return (i, "")
        start = i
        while (
            start > 0
            and lines[start - 1]["type"] == "llm_call"
            and lines[start - 1]["agent"] == event["agent"]
        ):
            start -= 1
        return (start, event["request"].get("prompt") or "")

    order = sorted(range(len(lines)), key=key)
    path.write_text("".join(json.dumps(lines[i], separators=(",", ":")) + "\n" for i in order))


def test_medagents_vote_round(snap_compare: Any, method_runs: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "snapshot-medagents"
    shutil.copytree(method_runs["medagents"], run)
    _order_concurrent_calls(run / TRAJECTORIES)
    normalise_for_snapshots(run)
    app = InspectApp(run, poll_s=0, use_cache=False)
    # The item, then down its tree to the first vote round (after the revision it caused).
    assert snap_compare(app, terminal_size=SIZE, press=["enter", *["down"] * 17])
