"""The terminal viewer, driven with Textual's Pilot on a real run of the mcq_refine recipe."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from rich.console import Console
from textual.widgets import Static

from medloom.runs.store import TRAJECTORIES
from medloom.tui.app import InspectApp
from medloom.tui.help_screen import HelpScreen
from medloom.tui.item_list import ItemList
from medloom.tui.item_screen import ItemScreen
from medloom.tui.node_stats import NodeStatsScreen
from medloom.tui.trajectory_tree import TrajectoryTree

SIZE = (80, 24)


def text_of(widget: Static) -> str:
    console = Console(width=100, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


def _report(run: Path) -> dict[str, int]:
    return dict(json.loads((run / "report.json").read_text()))


def _item_with(run: Path, predicate: str) -> str:
    """The id of an item whose events include a line containing ``predicate``."""
    for line in (run / TRAJECTORIES).read_text().splitlines():
        if predicate in line:
            return str(json.loads(line)["item_id"])
    raise AssertionError(f"no event with {predicate!r}")


async def test_status_filters_and_cycling(mcq_run: Path, tmp_path: Path) -> None:
    report = _report(mcq_run)
    app = InspectApp(mcq_run, poll_s=0, use_cache=False)
    async with app.run_test(size=SIZE) as pilot:
        items = app.query_one(ItemList)
        assert len(items.view) == report["items"]
        await pilot.press("3")
        assert items.status_filter == "rejected"
        assert len(items.view) == report["rejected"]
        assert {items.index.items[i].status for i in items.view} == {"rejected"}
        await pilot.press("4")
        assert [items.index.items[i].status for i in items.view] == ["failed"]
        assert "failed 1" in text_of(app.query_one("#bar", Static))
        await pilot.press("t")  # failed → running
        assert items.status_filter == "running" and items.view == []
        await pilot.press("1")
        assert len(items.view) == report["items"]


async def test_search_narrows_and_escape_clears(mcq_run: Path) -> None:
    app = InspectApp(mcq_run, poll_s=0, use_cache=False)
    async with app.run_test(size=SIZE) as pilot:
        items = app.query_one(ItemList)
        await pilot.press("slash", *"context length")
        assert [items.index.items[i].status for i in items.view] == ["failed"]
        await pilot.press("enter")
        assert items.has_focus and items.search == "context length"
        await pilot.press("slash", "escape")
        assert items.search == "" and len(items.view) == _report(mcq_run)["items"]


async def test_navigate_open_an_item_and_read_a_call(mcq_run: Path) -> None:
    app = InspectApp(mcq_run, poll_s=0, use_cache=False)
    async with app.run_test(size=SIZE) as pilot:
        items = app.query_one(ItemList)
        await pilot.press("down", "down", "up")
        assert items.cursor == 1
        await pilot.press("end")
        assert items.cursor == len(items.view) - 1
        await pilot.press("2", "home", "enter")  # the first kept item
        await pilot.pause()
        screen = app.screen
        first_kept = next(e for e in items.index.items if e.status == "kept")
        assert isinstance(screen, ItemScreen) and screen.item_id == first_kept.item_id
        tree = screen.query_one(TrajectoryTree)
        branches = [str(child.label) for child in tree.root.children]
        assert branches[0] == "generate"
        leaves = [str(leaf.label) for branch in tree.root.children for leaf in branch.children]
        assert sum("★ kept" in label for label in leaves) == 1  # the trace that became the row
        assert first_kept.answer and first_kept.answer.split(",")[0] in {"A", "B", "C", "D"}
        summary = text_of(screen.query_one("#detail", Static))
        assert "question:" in summary and "kept" in summary and "options:" in summary
        await pilot.press("down", "down")  # generate → its first call
        detail = text_of(screen.query_one("#detail", Static))
        assert "prompt" in detail and "endpoint" in detail and "cache" in detail
        await pilot.press("escape")
        assert isinstance(app.screen, type(app.screen_stack[0]))


async def test_rejected_item_shows_rounds_a_diff_and_the_rejection(mcq_run: Path) -> None:
    app = InspectApp(mcq_run, poll_s=0, use_cache=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3", "enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ItemScreen)
        tree = screen.query_one(TrajectoryTree)
        labels = [str(child.label) for child in tree.root.children]
        assert "refine · round 1" in labels and "verify · round 2" in labels
        assert labels[-1] == "end: rejected"
        await pilot.press("end")  # the item's end: its outcome and what each node did
        end = text_of(screen.query_one("#detail", Static))
        assert "status rejected" in end and "per node" in end and "refine" in end
        await pilot.press("home")
        await pilot.press("d")
        detail = text_of(screen.query_one("#detail", Static))
        assert "revision round 1 by refine" in detail
        assert any(line.startswith("-Step") for line in detail.splitlines())
        assert any(line.startswith("+Step") for line in detail.splitlines())
        await pilot.press("d")
        assert "revision round 2" in text_of(screen.query_one("#detail", Static))


async def test_verdict_flags_are_shown_on_the_steps(mcq_run: Path) -> None:
    item_id = _item_with(mcq_run, '"step_flags":{"2"')
    app = InspectApp(mcq_run, poll_s=0, use_cache=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("slash", *item_id, "enter", "enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ItemScreen) and screen.item_id == item_id
        await pilot.press("f")
        detail = text_of(screen.query_one("#detail", Static))
        assert "FAILED" in detail and "flags steps [2]" in detail
        flagged = [line for line in detail.splitlines() if line.startswith("⚑ Step 2:")]
        assert flagged, detail
        assert "└ judge:judge: step 2 does not follow." in detail


async def test_mouse_click_selects_and_double_click_opens(mcq_run: Path) -> None:
    app = InspectApp(mcq_run, poll_s=0, use_cache=False)
    async with app.run_test(size=SIZE) as pilot:
        items = app.query_one(ItemList)
        await pilot.click(ItemList, offset=(10, 2))
        assert items.cursor == 2
        await pilot.click(ItemList, offset=(10, 3), times=2)
        await pilot.pause()
        assert isinstance(app.screen, ItemScreen)
        assert app.screen.item_id == items.index.items[items.view[3]].item_id


async def test_a_failed_item_shows_the_error(mcq_run: Path) -> None:
    app = InspectApp(mcq_run, poll_s=0, use_cache=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4", "enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ItemScreen)
        await pilot.press("down", "down")
        assert "context length exceeded" in text_of(screen.query_one("#detail", Static))


async def test_help_and_stats_screens(mcq_run: Path) -> None:
    app = InspectApp(mcq_run, poll_s=0, use_cache=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "next revision" in text_of(app.screen.query_one("#help-keys", Static))
        await pilot.press("escape", "s")
        assert isinstance(app.screen, NodeStatsScreen)
        stats = text_of(app.screen.query_one("#stats", Static))
        assert "pass rate by refinement round" in stats and "verify" in stats
        await pilot.press("escape")
        assert not isinstance(app.screen, NodeStatsScreen | HelpScreen)


async def test_a_live_run_shows_new_items_as_they_are_written(mcq_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "live"
    shutil.copytree(mcq_run, run)
    lines = (mcq_run / TRAJECTORIES).read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    (run / TRAJECTORIES).write_bytes(b"".join(lines[:half]) + lines[half][:10])  # and a partial line
    app = InspectApp(run, poll_s=0.05)
    async with app.run_test(size=SIZE) as pilot:
        items = app.query_one(ItemList)
        before = app.index.counts()
        assert before["running"] > 0
        await pilot.press("5", "enter")  # open a running item
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ItemScreen)
        tree = screen.query_one(TrajectoryTree)
        assert not str(tree.root.children[-1].label).startswith("end:")
        await pilot.press("slash")  # list actions do nothing on an item's screen
        assert isinstance(app.screen, ItemScreen)
        (run / TRAJECTORIES).write_bytes(b"".join(lines))
        for _ in range(40):
            await pilot.pause(0.05)
            if app.index.counts()["running"] == 0:
                break
        await pilot.pause(0.1)
        assert str(tree.root.children[-1].label).startswith("end:"), "the open item was not updated"
        await pilot.press("escape")
        assert items.view == []  # still filtered on running: none left
        await pilot.press("1")
        after = app.index.counts()
        assert after["running"] == 0 and after["kept"] == _report(mcq_run)["kept"]
        assert len(items.view) == _report(mcq_run)["items"]
        assert "running 0" in text_of(app.query_one("#bar", Static))
