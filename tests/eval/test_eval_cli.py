"""`medloom eval` through the real entry point, against a scripted fake endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from medloom.eval.stats import wilson_interval
from medloom.testing.fake import FakeOpenAIServer, FakeRequest
from tests.helpers import REPO, medloom_cli

# Benchmark rows in the MedAgentsBench layout: realidx, question, options, answer_idx, answer (text).
QUESTIONS = {
    "alpha": ("B", "B", "Answer: B"),
    "bravo": ("A", "A", "Answer: C"),
    "charlie": ("D", "C", "Answer: D"),
    "delta": ("C", "C", "I am not sure."),
}
"""keyword → (gold, direct answer, CoT reply ending)."""


def _benchmark(tmp_path: Path) -> Path:
    path = tmp_path / "bench.jsonl"
    rows = []
    for i, (word, (gold, _, _)) in enumerate(QUESTIONS.items()):
        options = {"A": f"{word} one", "B": f"{word} two", "C": f"{word} three", "D": f"{word} four"}
        rows.append(
            {
                "realidx": 100 + i,
                "question": f"Which option fits the {word} case?",
                "options": options,
                "answer_idx": gold,
                "answer": options[gold],
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _solver(req: FakeRequest) -> str:
    """Direct prompts end with 'Answer:', CoT prompts with 'Step 1:'; the last question decides."""
    last = req.prompt_text.rsplit("Question:", 1)[-1]
    word = next(w for w in QUESTIONS if w in last)
    _, direct, cot = QUESTIONS[word]
    if req.prompt_text.rstrip().endswith("Answer:"):
        return f" {direct}"
    return f" The case points one way.\n{cot}"


@pytest.fixture
def solver_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(_solver) as server:
        yield server


def test_eval_compares_solvers_and_writes_predictions(
    tmp_path: Path, solver_server: FakeOpenAIServer
) -> None:
    bench = _benchmark(tmp_path)
    out = tmp_path / "out"
    result = medloom_cli(
        "eval",
        "configs/eval/direct.yaml",
        "configs/eval/cot.yaml",
        "--dataset",
        str(bench),
        "--endpoint",
        solver_server.base_url,
        "--out",
        str(out),
        "--no-cache",
    )
    assert result.returncode == 0, result.stderr
    # The rich table names both solvers and their accuracies.
    assert "direct" in result.stdout and "cot" in result.stdout
    assert "75.0%" in result.stdout and "50.0%" in result.stdout

    summary = json.loads((out / "results.json").read_text())
    by_name = {s["solver"]: s for s in summary["solvers"]}
    direct, cot = by_name["direct"], by_name["cot"]
    assert (direct["n"], direct["correct"], direct["answered"]) == (4, 3, 4)
    assert (cot["n"], cot["correct"], cot["answered"]) == (4, 2, 3)
    assert (direct["ci_low"], direct["ci_high"]) == pytest.approx(wilson_interval(3, 4))
    assert cot["ci_low"] == pytest.approx(0.15, abs=1e-3) and cot["ci_high"] == pytest.approx(0.85, abs=1e-3)
    assert direct["prompt_tokens"] > 0 and direct["completion_tokens"] >= 4
    assert Path(direct["run_dir"], "trajectories.jsonl").exists()

    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 8
    cot_preds = {p["item_id"]: p for p in lines if p["solver"] == "cot"}
    assert cot_preds["101"]["predicted"] == "C" and cot_preds["101"]["correct"] is False
    assert cot_preds["103"]["predicted"] is None and cot_preds["103"]["gold"] == "C"
    assert pq.read_table(out / "predictions.parquet").num_rows == 8
    md = (out / "results.md").read_text()
    assert "| direct | 4 | 3 | 75.0% |" in md and "Wilson" in md


def test_eval_json_and_limit(tmp_path: Path, solver_server: FakeOpenAIServer) -> None:
    bench = _benchmark(tmp_path)
    result = medloom_cli(
        "eval",
        "configs/eval/direct.yaml",
        "--dataset",
        str(bench),
        "--endpoint",
        solver_server.base_url,
        "--limit",
        "2",
        "--json",
        "--out",
        str(tmp_path / "out"),
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    (solver,) = payload["solvers"]
    assert (solver["n"], solver["correct"]) == (2, 2)
    assert Path(payload["files"]["predictions_jsonl"]).exists()


def test_eval_names_a_missing_gold_column(tmp_path: Path) -> None:
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"question": "Q?", "options": {"A": "x", "B": "y"}, "key": "A"}) + "\n")
    result = medloom_cli("eval", str(REPO / "configs/eval/direct.yaml"), "--dataset", str(bench))
    assert result.returncode == 2
    assert "--field answer=COLUMN" in result.stderr and "Traceback" not in result.stderr
