"""aevaluate in-process: the embedded default server is started once for every solver."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from medloom.core.errors import ConfigError
from medloom.eval.runner import aevaluate, default_solvers
from medloom.graphs.spec import GraphSpec
from medloom.testing.fake import FakeOpenAIServer, FakeRequest, Reply
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


def test_default_solvers_are_the_shipped_ones_that_exist(tmp_path: Path) -> None:
    found = default_solvers(REPO)
    assert [p.relative_to(REPO).as_posix() for p in found][:3] == [
        "configs/eval/direct.yaml",
        "configs/eval/cot.yaml",
        "configs/medprompt.yaml",
    ]
    assert (REPO / "configs/medagents.yaml" in found) == (REPO / "configs/medagents.yaml").is_file()
    with pytest.raises(ConfigError, match="pass CONFIG files"):
        default_solvers(tmp_path)


async def test_a_failed_item_counts_as_wrong_and_keeps_its_reason(tmp_path: Path) -> None:
    def flaky(req: FakeRequest) -> Reply | str:
        if "bravo" in req.prompt_text.rsplit("Question:", 1)[-1]:
            return Reply.error(400, message="prompt too long")
        return _solver(req)

    with FakeOpenAIServer(flaky) as server:
        result = await aevaluate(
            [REPO / "configs/eval/direct.yaml"],
            _benchmark(tmp_path),
            endpoints=[server.base_url],
            out_dir=tmp_path / "out",
            no_cache=True,
        )
    (solver,) = result.solvers
    assert (solver.n, solver.correct, solver.answered, solver.failed) == (4, 2, 3, 1)
    failed = next(p for p in result.predictions if p.status == "failed")
    assert failed.item_id == "101" and failed.predicted is None and not failed.correct
    assert "prompt too long" in (failed.reason or "")


async def test_a_solver_keeping_several_rows_answers_by_majority(tmp_path: Path) -> None:
    def samples(req: FakeRequest) -> Reply | str:
        last = req.prompt_text.rsplit("Question:", 1)[-1]
        if "alpha" in last:  # a 2-2 tie between A and B: the earlier sample (A) wins
            return Reply(texts=[" A", " B", " B", " A"])
        return Reply(texts=[" C", " D", " D", " A"])

    with FakeOpenAIServer(samples) as server:
        result = await aevaluate(
            [REPO / "configs/eval/direct.yaml"],
            _benchmark(tmp_path),
            endpoints=[server.base_url],
            overrides=["nodes.answer.samples=4"],
            out_dir=tmp_path / "out",
            no_cache=True,
        )
    predicted = {p.item_id: (p.predicted, p.detail["row_votes"]) for p in result.predictions}
    assert predicted["100"] == ("A", '{"A": 2, "B": 2}')
    assert predicted["101"] == ("D", '{"A": 1, "C": 1, "D": 2}')
    assert result.solvers[0].correct == 1  # only charlie's gold is D


async def test_an_item_rejected_by_the_recipes_own_gold_check_keeps_its_answer(tmp_path: Path) -> None:
    # A recipe that ends in a gold check (like medagents.yaml): wrong answers are rejected there,
    # but they are still the solver's answers, not "no answer".
    config = yaml.safe_load((REPO / "configs/eval/direct.yaml").read_text())
    config["dataset"]["path"] = str(REPO / "configs/data/demo_mcq.jsonl")
    config["nodes"]["check"] = {"type": "verifier", "verifiers": [{"check": "mcq_answer"}]}
    config["nodes"]["keep"] = {"type": "selector", "method": "all"}
    config["edges"] = ["answer -> check", {"from": "check", "to": "keep", "when": "passed"}]
    path = tmp_path / "gold_checked.yaml"
    path.write_text(yaml.safe_dump(config))
    with FakeOpenAIServer(_solver) as server:
        result = await aevaluate(
            [path], _benchmark(tmp_path), endpoints=[server.base_url], out_dir=tmp_path / "out", no_cache=True
        )
    (solver,) = result.solvers
    assert (solver.correct, solver.answered) == (3, 4)
    charlie = next(p for p in result.predictions if p.item_id == "102")
    assert (charlie.status, charlie.predicted, charlie.correct) == ("rejected", "C", False)
    assert "rejected at check" in charlie.detail["answer_from"]
