"""Step notes in the viewer: MedAgents vote rounds, gold resampling tries, decontamination removals."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console
from textual.widgets import Static

from medloom.core.events import Note
from medloom.runs.fold import compute_stats
from medloom.runs.rundir import RunDir
from medloom.tui.app import InspectApp
from medloom.tui.item_screen import ItemScreen
from medloom.tui.note_view import note_label, render_note
from medloom.tui.stats_tables import render_stats
from medloom.tui.trajectory_tree import TrajectoryTree
from tests.inspect.test_app import SIZE, text_of


def tree_lines(tree: TrajectoryTree) -> list[str]:
    lines = []
    for line in range(tree.last_line + 1):
        node = tree.get_node_at_line(line)
        if node is not None:
            lines.append(str(node.label))
    return lines


async def open_note(pilot: object, app: InspectApp, label_start: str) -> tuple[Note, str]:
    """Move the tree cursor to the first line starting with ``label_start``; its note and detail."""
    tree = app.screen.query_one(TrajectoryTree)
    for line in range(tree.last_line + 1):
        node = tree.get_node_at_line(line)
        if node is not None and str(node.label).startswith(label_start):
            tree.move_cursor(node)
            await pilot.pause()  # type: ignore[attr-defined]
            assert isinstance(node.data, Note)
            return node.data, text_of(app.screen.query_one("#detail", Static))
    raise AssertionError(f"no tree line starts with {label_start!r}: {tree_lines(tree)}")


async def test_a_medagents_item_shows_its_vote_rounds(method_runs: dict[str, Path]) -> None:
    app = InspectApp(method_runs["medagents"], poll_s=0, use_cache=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        assert isinstance(app.screen, ItemScreen)
        lines = tree_lines(app.screen.query_one(TrajectoryTree))
        assert "experts Cardiology, Pharmacology" in lines
        assert "round 1: 1 yes / 1 no — dissent: Pharmacology" in lines
        assert "round 2: 2 yes / 0 no" in lines
        assert "vote unanimous ✓" in lines
        note, detail = await open_note(pilot, app, "round 1")
        assert note.kind == "vote_round"
        node = app.screen.query_one(TrajectoryTree).cursor_node
        assert node is not None and node.parent is not None
        assert str(node.parent.label) == "vote · round 1"  # beside the revision it caused
        assert "vote round 1" in detail and "revised with the dissenters' advice" in detail
        pharmacology = next(line for line in detail.splitlines() if line.startswith("Pharmacology"))
        assert " no " in pharmacology and "Say that antithyroid drugs follow." in pharmacology
        cardiology = next(line for line in detail.splitlines() if line.startswith("Cardiology"))
        assert " yes" in cardiology
        _, detail = await open_note(pilot, app, "vote unanimous")
        assert "requires" in detail and "majority" in detail and "rounds   2" in detail


async def test_a_decontaminated_item_and_resampling_tries(method_runs: dict[str, Path]) -> None:
    app = InspectApp(method_runs["meditron"], poll_s=0, use_cache=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")  # demo-000: removed by decontamination
        assert isinstance(app.screen, ItemScreen) and app.screen.item_id == "demo-000"
        assert "contaminated 100% demo-eval ~eval-001" in tree_lines(app.screen.query_one(TrajectoryTree))
        _, detail = await open_note(pilot, app, "contaminated")
        assert "eval set demo-eval" in detail
        assert "100% of its 8-grams (threshold 50%)" in detail
        assert "eval-001 (8 shared)" in detail and "peaked t waves" in detail
        await pilot.press("escape", "down", "enter")  # demo-001: gold at the second try
        assert app.screen.item_id == "demo-001"  # type: ignore[attr-defined]
        _, detail = await open_note(pilot, app, "resample A, C → gold C ✓")
        assert "try 1: A\n" in detail and "try 2: C ✓ gold" in detail and "matched gold at try 2" in detail


def test_unknown_and_failed_notes() -> None:
    unknown = Note(item_id="q", node="kg", kind="paths", data={"found": 3})
    assert str(note_label(unknown)) == "note paths"
    gave_up = Note(
        item_id="q", kind="resample", data={"matched": False, "tries": 2, "answers": [None, "B"], "gold": "A"}
    )
    assert str(note_label(gave_up)) == "resample –, B → gold A ✗"
    console = Console(width=80, record=True, color_system=None, file=io.StringIO())
    console.print(render_note(unknown), render_note(gave_up))
    out = console.export_text()
    assert "note: paths" in out and "'found': 3" in out
    assert "✗ no gold match" in out and "✓ gold" not in out


def test_stats_and_card_show_contamination_and_note_counts(
    method_runs: dict[str, Path], mcq_run: Path
) -> None:
    run = RunDir(method_runs["meditron"])
    stats = compute_stats(run)
    assert stats.report.notes == {"decontaminate": {"contaminated": 1}, "teacher": {"resample": 2}}
    assert stats.report.note_facets["teacher"]["resample"] == {"matched": 1, "no match": 1, "tries": 5}
    votes = compute_stats(RunDir(method_runs["medagents"])).report
    assert votes.notes["vote"] == {"vote_round": 2, "vote_outcome": 1}
    assert votes.note_facets["vote"] == {"vote_round": {"revised": 1}, "vote_outcome": {"unanimous": 1}}
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    console.print(render_stats(stats))
    out = console.export_text()
    notes = out.split("step notes")[1].split("contamination removed")[0]
    assert re.search(r"decontaminate\s+│\s+contaminated\s+│\s+1", notes)
    assert re.search(r"teacher\s+│\s+resample\s+│\s+2\s+│\s+matched 1, no match 1, tries 5", notes)
    removed = out.split("contamination removed")[1]
    assert re.search(
        r"demo-000\s+│\s+–\s+│\s+demo-eval\s+│\s+100.0%\s+│\s+eval-001\s+│\s+classically", removed
    )
    card = (run.path / "README.md").read_text()
    assert "| decontaminate | contaminated | 1 | demo-eval 1 |" in card
    assert "| teacher | resample | 2 | matched 1, no match 1, tries 5 |" in card
    assert "1 removal(s) for overlap with evaluation sets" in card
    assert "| demo-000 | – | demo-eval | 100.0% | eval-001 | 8 | classically produces peaked" in card
    plain = (mcq_run / "README.md").read_text()
    assert "## Decontamination" not in plain and "## Step notes" not in plain
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    console.print(render_stats(compute_stats(RunDir(mcq_run))))
    assert "step notes" not in console.export_text() and "contamination" not in console.export_text()
