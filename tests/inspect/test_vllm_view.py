"""Integration: view and stats on a real run of mcq_refine against the shared vLLM server."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import Static

from medloom.runs.fold import compute_stats
from medloom.runs.rundir import RunDir
from medloom.runs.runner import arun
from medloom.serving import VLLMServer
from medloom.tui.app import InspectApp
from medloom.tui.item_screen import ItemScreen
from tests.helpers import RECIPE

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

SMALL = [
    "nodes.generate.samples=1",
    "nodes.generate.temperatures=[0.7]",
    "nodes.generate.sampling.max_tokens=48",
    "nodes.refine.sampling.max_tokens=48",
    "nodes.refine.max_rounds=1",
    "nodes.judge.verifiers.0.sampling.max_tokens=24",
]


async def test_view_and_stats_of_a_real_run(vllm_server: VLLMServer, tmp_path: Path) -> None:
    result = await arun(RECIPE, endpoints=[vllm_server.base_url], limit=1, overrides=SMALL, runs_dir=tmp_path)
    stats = compute_stats(RunDir(result.run_dir))
    assert stats.report.items == 1 and stats.usage and stats.usage[0].completion_tokens > 0
    app = InspectApp(result.run_dir, poll_s=0)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ItemScreen)
        await pilot.press("down", "down")  # the generator's call
        console = Console(width=100, file=io.StringIO(), record=True, color_system=None)
        console.print(screen.query_one("#detail", Static).content)
        detail = console.export_text()
        assert "endpoint" in detail and "completion" in detail and "prompt" in detail
