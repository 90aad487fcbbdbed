"""configs/kg_multihop.yaml end to end through the CLI against a fake endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medloom.kg import load_kg
from medloom.kg.paths import KGPath, hop_is_edge
from medloom.testing.fake_openai import FakeOpenAIServer
from tests.helpers import REPO, medloom_cli, only_run, read_report
from tests.kg.oracle import KGOracle

RECIPE = REPO / "configs" / "kg_multihop.yaml"


def run_recipe(tmp_path: Path, oracle: KGOracle, *extra: str) -> Path:
    with FakeOpenAIServer(oracle) as server:
        result = medloom_cli(
            "run", str(RECIPE), "--endpoint", server.base_url, "--runs-dir", str(tmp_path), *extra
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return only_run(tmp_path)


@pytest.mark.slow
def test_kept_rows_carry_real_kg_paths_difficulty_and_grounded_traces(tmp_path: Path) -> None:
    oracle = KGOracle(RECIPE, ["source.params.n=3"])
    run_dir = run_recipe(tmp_path, oracle, "--limit", "3")
    report = read_report(run_dir)
    assert (report["items"], report["kept"]) == (3, 3), report["rejection_reasons"]
    rows = [json.loads(line) for line in (run_dir / "data.jsonl").read_text().splitlines()]
    kg = load_kg().kg
    for row in rows:
        path = KGPath.model_validate(json.loads(row["path"]))
        assert 2 <= len(path) <= 4 and all(hop_is_edge(kg, h) for h in path.hops)
        assert row["answer_text"] == path.end.name and row["predicted"] == row["answer"]
        assert len(row["options"]) == 5
        assert row["difficulty"] == "easy" and row["solver_correct"] == "4"
        assert all(n.name not in row["question"] for n in path.intermediates[:1])
        assert path.start.name in row["question"]
        assert len(row["steps"]) == len(path)


@pytest.mark.slow
def test_a_question_naming_an_intermediate_is_rejected_for_leakage(tmp_path: Path) -> None:
    oracle = KGOracle(RECIPE, ["source.params.n=2"], leak=True)
    run_dir = run_recipe(tmp_path, oracle, "--limit", "2")
    report = read_report(run_dir)
    assert (report["items"], report["kept"], report["rejected"]) == (2, 0, 2)
    assert [r for r, _ in report["rejection_reasons"]] == ["check_question: failed leakage"]
    ends = [
        json.loads(line)
        for line in (run_dir / "trajectories.jsonl").read_text().splitlines()
        if '"item_end"' in line
    ]
    named = {it.data["intermediates"][0] for it in oracle.items}
    assert all(any(n in e["reason"] for n in named) and "the question names" in e["reason"] for e in ends)
