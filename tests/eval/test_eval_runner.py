"""aevaluate in-process: the embedded default server is started once for every solver."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from medloom.eval.runner import aevaluate
from medloom.graphs.spec import GraphSpec
from medloom.testing.fake_openai import FakeOpenAIServer
from tests.eval.test_eval_cli import _benchmark, _solver
from tests.helpers import REPO


async def test_one_embedded_server_serves_every_solver(tmp_path: Path) -> None:
    started: list[str] = []
    with FakeOpenAIServer(_solver) as server:

        @contextlib.asynccontextmanager
        async def embedded(spec: GraphSpec) -> AsyncIterator[list[str]]:
            started.append(spec.name)
            yield [server.base_url]

        result = await aevaluate(
            [REPO / "configs/eval/direct.yaml", REPO / "configs/eval/cot.yaml"],
            _benchmark(tmp_path),
            out_dir=tmp_path / "out",
            embedded=embedded,
            no_cache=True,
        )
    assert started == ["direct"]
    assert [(s.solver, s.correct, s.n) for s in result.solvers] == [("direct", 3, 4), ("cot", 2, 4)]
    assert {p.solver for p in result.predictions} == {"direct", "cot"}
