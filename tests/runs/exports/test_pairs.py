"""DPO pairs and KTO labels: kept against failed traces of the same item, never the same text."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import medloom
from medloom.core.events import Note
from medloom.runs.exports import training_dataset
from tests.runs.exports.handmade import trace, verdict, write_run

GOOD = ["Malaria is caused by Plasmodium.", "Anopheles mosquitoes carry it."]


def _run(tmp_path: Path) -> Path:
    return write_run(
        tmp_path / "run",
        [
            (trace("good-1", GOOD, "B"), [verdict(True)]),
            (trace("good-2", [*GOOD, "So B."], "B"), [verdict(True)]),
            (trace("bad-1", ["Aedes carries it."], "A"), [verdict(False, by="mcq_answer")]),
            (trace("bad-2", ["Ticks carry it."], "A"), [verdict(False, {1: "ticks do not"})]),
            # a failing copy of a kept trace (e.g. judged again): must never be paired with it
            (trace("same-as-good", GOOD, "B"), [verdict(False, by="judge")]),
            (trace("unjudged", ["No verdict."], "A"), []),
        ],
        kept=["good-1", "good-2"],
    )


def test_dpo_pairs_kept_with_failed_traces_spread_over_both_sides(tmp_path: Path) -> None:
    ds = training_dataset(_run(tmp_path), "dpo")
    pairs = [(r["trace_id"], r["rejected_trace_id"]) for r in ds]
    assert pairs == [("good-1", "bad-1"), ("good-2", "bad-2"), ("good-1", "bad-2"), ("good-2", "bad-1")]
    for row in ds:
        assert row["chosen"][0]["content"] != row["rejected"][0]["content"]
        assert row["prompt"][-1] == {
            "role": "user",
            "content": "Which vector transmits malaria?\n\nA. Aedes mosquito\nB. Anopheles mosquito",
        }
    by_rejected = {r["rejected_trace_id"]: r for r in ds}
    assert by_rejected["bad-1"]["rejected_by"] == "mcq_answer"
    assert by_rejected["bad-2"]["rejected_reason"] == "ticks do not"
    assert ds[0]["chosen"][0]["content"].endswith("Answer: B. Anopheles mosquito")


def test_dpo_pairs_per_item_and_standard_layout(tmp_path: Path) -> None:
    ds = medloom.training_dataset(_run(tmp_path), "dpo", pairs_per_item=1, layout="standard", system=None)
    assert len(ds) == 1
    row = ds[0]
    assert row["prompt"] == "Which vector transmits malaria?\n\nA. Aedes mosquito\nB. Anopheles mosquito\n\n"
    assert row["chosen"].startswith("Step 1: Malaria") and row["rejected"].startswith("Step 1: Aedes")


def test_dpo_uses_pairs_an_op_recorded_instead_of_deriving_them(tmp_path: Path) -> None:
    note = Note(
        item_id="q1",
        node="pairs",
        kind="preference_pair",
        data={
            "kind": "mid_reasoning",
            "chosen": "Step 1: Anopheles carries it.",
            "rejected": "Step 1: Aedes carries it.",
            "chosen_trace_id": "good-1",
            "rejected_trace_id": "bad-1",
            "reason": "step 1 names the wrong vector",
        },
    )
    run = write_run(
        tmp_path / "run",
        [(trace("good-1", GOOD, "B"), [verdict(True)]), (trace("bad-1", ["Aedes."], "A"), [verdict(False)])],
        kept=["good-1"],
        notes=[note],
    )
    [row] = list(training_dataset(run, "dpo", reasoning="think"))
    assert row["pair_kind"] == "mid_reasoning"
    assert row["chosen"] == [{"role": "assistant", "content": "Step 1: Anopheles carries it."}]
    assert (row["trace_id"], row["rejected_trace_id"]) == ("good-1", "bad-1")


def test_kto_labels_kept_true_failed_false_without_duplicate_text(tmp_path: Path) -> None:
    ds = training_dataset(_run(tmp_path), "kto", reasoning="think")
    labels = {r["trace_id"]: r["label"] for r in ds}
    assert labels == {"good-1": True, "good-2": True, "bad-1": False, "bad-2": False}
    completion = next(r for r in ds if r["trace_id"] == "good-1")["completion"][0]["content"]
    assert completion.startswith("<think>\nStep 1: Malaria") and completion.endswith(
        "</think>\n\nAnswer: B. Anopheles mosquito"
    )
    assert next(r for r in ds if r["trace_id"] == "bad-2")["reason"] == "ticks do not"


@pytest.mark.parametrize("style", ["messages", "prompt_completion"])
def test_sft_rows_are_the_kept_traces(tmp_path: Path, style: str) -> None:
    ds = training_dataset(_run(tmp_path), "sft", sft_style=style)
    assert ds["trace_id"] == ["good-1", "good-2"]
    if style == "messages":
        assert [m["role"] for m in ds[0]["messages"]] == ["system", "user", "assistant"]
    else:
        assert ds[0]["completion"][0]["role"] == "assistant" and ds[0]["prompt"][-1]["role"] == "user"


def test_recipe_run_pairs_come_from_its_kept_and_failed_traces(refine_run: Path) -> None:
    kept = set()
    failed = set()
    for line in (refine_run / "trajectories.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "item_end":
            kept |= {r["trace_id"] for r in event["rows"]}
        if event["type"] == "verdict" and not event["verdict"]["passed"]:
            failed.add(event["trace_id"])
    ds = training_dataset(refine_run, "dpo", pairs_per_item=2)
    assert len(ds) > 0
    assert set(ds["trace_id"]) <= kept
    assert set(ds["rejected_trace_id"]) <= failed - kept
    assert max(Counter(ds["item_id"]).values()) <= 2
