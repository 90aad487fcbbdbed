"""``medloom.eval.evaluate`` called where an event loop already runs (Jupyter, an async app): it used
to raise asyncio's bare "cannot be called from a running event loop"; it now runs in a worker
thread, and ``medloom.eval.aevaluate`` is there to await instead."""

from __future__ import annotations

import asyncio
from pathlib import Path

import medloom.eval
from medloom.testing.fake import FakeOpenAIServer
from tests.eval.test_eval_cli import _benchmark, _solver
from tests.helpers import REPO


async def test_evaluate_works_inside_a_running_event_loop(tmp_path: Path) -> None:
    asyncio.get_running_loop()  # as in a notebook cell
    with FakeOpenAIServer(_solver) as server:
        result = medloom.eval.evaluate(
            [REPO / "configs/eval/direct.yaml"],
            _benchmark(tmp_path),
            endpoints=[server.base_url],
            out_dir=tmp_path / "sync",
            no_cache=True,
        )
        awaited = await medloom.eval.aevaluate(
            [REPO / "configs/eval/direct.yaml"],
            _benchmark(tmp_path),
            endpoints=[server.base_url],
            out_dir=tmp_path / "async",
            no_cache=True,
        )
    assert [(s.solver, s.correct, s.n) for s in result.solvers] == [("direct", 3, 4)]
    assert [(s.solver, s.correct, s.n) for s in awaited.solvers] == [("direct", 3, 4)]
