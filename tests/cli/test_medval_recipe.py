"""configs/medval.yaml through the real entry point, on scripted replies: which pairs the
consistency filter keeps, and an unreadable validator reply rejecting its item as undecided."""

from __future__ import annotations

import json
from pathlib import Path

from medloom.testing.fake import FakeOpenAIServer, FakeRequest
from tests.helpers import REPO, medloom_cli, only_run, read_report

DEMO = [json.loads(line) for line in (REPO / "configs/data/medval_demo.jsonl").read_text().splitlines()]

# item id -> (grade of the clean output, grade of the perturbed output); attack levels are the demo's
GRADES: dict[str, tuple[str, str]] = {
    "medval-med-01": ("1", "1"),  # attack 1: consistency 1.0, kept
    "medval-med-02": ("1", "3"),  # attack 3: 1.0, kept
    "medval-med-03": ("1", "3"),  # attack 4: 1 - (0 + 1/9 + 1/9)/6 = 0.963, kept
    "medval-qry-01": ("2", "2"),  # attack 2: 1 - (1/9 + 0 + 1/9)/6 = 0.963, kept
    "medval-qry-02": ("1", "1"),  # attack 4 unseen: 1 - (0 + 1 + 1)/6 = 0.667, rejected
    "medval-qry-03": ("3", "3"),  # attack 1: 1 - (4/9 + 4/9 + 0)/6 = 0.852, rejected
    "medval-rep-01": ("1", "4"),  # attack 3: 0.963, kept
    "medval-rep-02": ("1", "the output reads well"),  # no level, twice: undecided, rejected
    "medval-rep-03": ("2", "4"),  # attack 4: 1 - (1/9 + 0 + 1/9)/6 = 0.963, kept
    "medval-simp-01": ("1", "4"),  # attack 2: 1 - (0 + 4/9 + 4/9)/6 = 0.852, rejected
    "medval-simp-02": ("7", "1"),  # a level outside 1-4: undecided, rejected
    "medval-simp-03": ("1", "2"),  # attack 3: 1 - (0 + 1/9 + 1/9)/6 = 0.963, kept
}
KEPT = {
    "medval-med-01",
    "medval-med-02",
    "medval-med-03",
    "medval-qry-01",
    "medval-rep-01",
    "medval-rep-03",
    "medval-simp-03",
}


def medval_script(req: FakeRequest) -> str:
    """Plays the generator (prefixes the clean output) and the validator (grades by item)."""
    case = req.prompt_text.rsplit("###", 1)[-1]
    row = next(r for r in DEMO if f"Input: {r['input']}\n" in case)
    if case.endswith("Rewritten output:"):
        return f" PERTURBED {row['reference']}\nTask: another example the stop missed"
    assert case.endswith("Risk level:"), case[-80:]
    clean, perturbed = GRADES[row["id"]]
    grade = perturbed if "Output: PERTURBED" in case else clean
    errors = '\n- hallucination: "PERTURBED" | not in the input' if grade in ("3", "4") else "\nErrors: none"
    return f" {grade}{errors}"


def test_medval_recipe_keeps_consistent_pairs_only(tmp_path: Path) -> None:
    with FakeOpenAIServer(medval_script) as server:
        result = medloom_cli(
            "run",
            "configs/medval.yaml",
            "--endpoint",
            server.base_url,
            "--runs-dir",
            str(tmp_path),
            "-q",
            timeout=600,
        )
    assert result.returncode == 0, result.stderr
    run_dir = only_run(tmp_path)
    report = read_report(run_dir)
    assert (report["items"], report["kept"]) == (12, len(KEPT))

    rows = {r["item_id"]: r for r in map(json.loads, (run_dir / "data.jsonl").read_text().splitlines())}
    assert set(rows) == KEPT
    by_id = {r["id"]: r for r in DEMO}
    for item_id, row in rows.items():
        demo = by_id[item_id]
        assert row["clean_output"] == demo["reference"]
        assert row["perturbed_output"] == f"PERTURBED {demo['reference']}"  # the run-on example cut off
        assert row["attack_level"] == demo["attack_level"]
        assert (str(row["clean_grade"]), str(row["perturbed_grade"])) == GRADES[item_id]
        assert row["consistency"] >= 0.95 and row["score"] == row["consistency"]
    assert rows["medval-med-03"]["consistency"] == 0.963
    assert rows["medval-rep-01"]["perturbed_errors"] == [
        {"kind": "hallucination", "sentences": ["PERTURBED"], "explanation": "not in the input"}
    ]

    # real column types in the saved dataset
    from datasets import load_from_disk

    features = load_from_disk(str(run_dir / "dataset")).features
    assert {
        k: features[k].dtype for k in ("attack_level", "clean_grade", "perturbed_grade", "consistency")
    } == {
        "attack_level": "int64",
        "clean_grade": "int64",
        "perturbed_grade": "int64",
        "consistency": "float64",
    }

    ends = {
        e["item_id"]: e
        for e in map(json.loads, (run_dir / "trajectories.jsonl").read_text().splitlines())
        if e.get("type") == "item_end"
    }
    assert {i for i, e in ends.items() if e["status"] == "rejected"} == set(GRADES) - KEPT
    assert "consistency 0.667" in ends["medval-qry-02"]["reason"]
    assert "consistency 0.852" in ends["medval-simp-01"]["reason"]
    assert "validator undecided on the perturbed output: no risk level" in ends["medval-rep-02"]["reason"]
    assert (
        "validator undecided on the clean output: risk level 7 is outside 1-4"
        in ends["medval-simp-02"]["reason"]
    )
