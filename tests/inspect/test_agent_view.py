"""The viewer shows a tool-using agent's samples as folded conversations: turns, and each tool
call with its result beneath it."""

from __future__ import annotations

from pathlib import Path

from medloom.tui.app import InspectApp
from medloom.tui.item_screen import ItemScreen
from medloom.tui.trajectory_tree import TrajectoryTree
from tests.test_medresearcher import run_recipe


async def test_agent_conversations_are_folded_with_their_tool_calls(tmp_path: Path) -> None:
    run_dir = run_recipe(tmp_path).run_dir
    app = InspectApp(run_dir, poll_s=0, use_cache=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2", "home", "enter")  # the first kept item
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ItemScreen)
        tree = screen.query_one(TrajectoryTree)
        answer = next(b for b in tree.root.children if str(b.label) == "answer")
        conversations = [c for c in answer.children if str(c.label).startswith("conversation")]
        assert len(conversations) == 4 and not any(c.is_expanded for c in conversations)
        labels = [str(n.label) for n in conversations[0].children]
        assert labels[0].startswith("turn 1") and labels[1].startswith("⚙ find_entity(")
        call = conversations[0].children[1]
        assert [str(leaf.label)[:2] for leaf in call.children] == ["↳ "]  # the result, folded under its call
        assert any("→ answer" in label for label in labels)
