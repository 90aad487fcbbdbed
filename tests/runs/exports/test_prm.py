"""PRM labels follow the verifiers' step flags, with the documented rule after the first error."""

from __future__ import annotations

import json
from pathlib import Path

from medloom.runs.exports import training_dataset, training_rows
from medloom.runs.exports.layout import ExportOptions
from medloom.runs.rundir import RunDir
from tests.runs.exports.handmade import trace, verdict, write_run

STEPS = ["Malaria is caused by Plasmodium.", "Aedes carries it.", "So the vector is Aedes.", "Check options."]


def handmade(tmp_path: Path) -> Path:
    flagged_twice = trace("t-flagged", STEPS, "A")
    clean = trace("t-clean", ["Malaria is caused by Plasmodium.", "Anopheles carries it."], "B")
    unflagged_fail = trace("t-noflags", ["Plasmodium.", "Mosquitoes."], "A")
    first_step_wrong = trace("t-first", ["Malaria is viral.", "Aedes then."], "A")
    return write_run(
        tmp_path / "run",
        [
            # two verifiers flag steps 3 and 2: the first error is step 2
            (flagged_twice, [verdict(False, {3: "wrong vector"}, "kg"), verdict(False, {2: "Aedes: no"})]),
            (clean, [verdict(True), verdict(True, by="kg")]),
            (unflagged_fail, [verdict(False)]),
            (first_step_wrong, [verdict(False, {1: "not viral"})]),
        ],
        kept=["t-clean"],
    )


def test_labels_match_the_step_flags_and_mark_every_step_after_the_first_error(tmp_path: Path) -> None:
    rows = {r["trace_id"]: r for r in training_dataset(handmade(tmp_path), "prm")}
    assert set(rows) == {"t-flagged", "t-clean", "t-first"}  # no step-level evidence on t-noflags
    assert rows["t-flagged"]["completions"] == STEPS
    assert rows["t-flagged"]["labels"] == [True, False, False, False]
    assert rows["t-flagged"]["first_error_step"] == 2
    assert rows["t-flagged"]["flags"] == ["step 3 (kg): wrong vector", "step 2 (judge): Aedes: no"]
    assert rows["t-clean"]["labels"] == [True, True] and rows["t-clean"]["first_error_step"] is None
    assert rows["t-first"]["labels"] == [False, False]
    assert rows["t-clean"]["prompt"].endswith("A. Aedes mosquito\nB. Anopheles mosquito\n\n")


def test_truncate_ends_each_row_at_its_first_error_and_the_card_counts_skips(tmp_path: Path) -> None:
    made = training_rows(RunDir(handmade(tmp_path)), "prm", ExportOptions(prm_after_error="truncate"))
    rows = {r["trace_id"]: r for r in made.rows}
    assert rows["t-flagged"]["labels"] == [True, False]
    assert rows["t-flagged"]["completions"] == STEPS[:2]
    assert rows["t-first"]["labels"] == [False]
    assert made.skipped == {"failed without step flags": 1}
    assert "left out (the row ends at the first wrong step)" in made.method


def test_labels_of_a_recipe_run_agree_with_its_verdict_events(refine_run: Path) -> None:
    flags: dict[str, set[int]] = {}
    for line in (refine_run / "trajectories.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "verdict":
            flags.setdefault(event["trace_id"], set()).update(int(k) for k in event["verdict"]["step_flags"])
    rows = list(training_dataset(refine_run, "prm"))
    assert any(False in r["labels"] for r in rows) and any(all(r["labels"]) for r in rows)
    for row in rows:
        flagged = flags[row["trace_id"]]
        first = min(flagged) if flagged else None
        assert row["first_error_step"] == first
        assert row["labels"] == [first is None or i < first for i in range(1, len(row["labels"]) + 1)]
