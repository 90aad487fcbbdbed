"""The medprompt recipes through the real entry point: build a bank, then use it."""

from __future__ import annotations

import json
from pathlib import Path

from medloom.ops.knn_bank import load_bank
from medloom.testing.fake import FakeOpenAIServer
from tests.helpers import medloom_cli, only_run, read_report


def test_bank_recipe_output_feeds_the_medprompt_recipe(
    tmp_path: Path, student_server: FakeOpenAIServer
) -> None:
    url = student_server.base_url
    bank_runs = tmp_path / "bank"
    built = medloom_cli(
        "run", "configs/medprompt_bank.yaml", "--endpoint", url, "--runs-dir", str(bank_runs), "-q"
    )
    assert built.returncode == 0, built.stderr
    bank_run = only_run(bank_runs)
    report = read_report(bank_run)
    assert report["items"] == 16 and 0 < report["kept"] < 16  # the gold filter drops wrong solutions
    rows = [json.loads(line) for line in (bank_run / "data.jsonl").read_text().splitlines()]
    assert all(r["predicted"] == r["answer"] for r in rows)
    bank = load_bank(bank_run / "data.jsonl")
    assert len(bank) == report["kept"] and all(e.steps for e in bank)

    runs = tmp_path / "medprompt"
    result = medloom_cli(
        "run",
        "configs/medprompt.yaml",
        "--endpoint",
        url,
        "--limit",
        "3",
        "--runs-dir",
        str(runs),
        "--set",
        f"nodes.fewshot.params.bank={bank_run / 'data.jsonl'}",
        "--set",
        "nodes.fewshot.params.k=3",
        "-q",
    )
    assert result.returncode == 0, result.stderr
    run_dir = only_run(runs)
    assert read_report(run_dir)["kept"] == 3
    kept = [json.loads(line) for line in (run_dir / "data.jsonl").read_text().splitlines()]
    for row in kept:
        votes = {k: n for k, n in row["votes"].items() if n is not None}  # a struct over all letters
        assert sum(votes.values()) <= 5 and row["predicted"] in votes
        assert votes[row["predicted"]] == max(votes.values())
        assert len(row["fewshot_ids"]) == 3
        assert set(row["fewshot_ids"]) <= {e.id for e in bank}
    # 5 shuffled prompts per question, each with the 3 retrieved examples.
    assert student_server.request_count == report["calls"] + 15
