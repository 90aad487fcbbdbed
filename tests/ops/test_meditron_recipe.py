"""The meditron_resample recipe through the real CLI: decontamination then gold resampling."""

from __future__ import annotations

import json
from pathlib import Path

from medloom.testing.fake import FakeOpenAIServer, FakeRequest
from tests.helpers import REPO, medloom_cli, only_run, read_report
from tests.ops.recipes import tail


def teacher(req: FakeRequest) -> str:
    """Wrong on the first try (seed 0), right from the second; knows only the insulin question."""
    if "Insulin" not in tail(req.prompt_text):
        return " I do not know.\nAnswer: D"
    letter = "A" if req.body.get("seed") == 0 else "C"
    return f" Type 1 diabetes destroys the beta cells.\nStep 2: They make insulin.\nAnswer: {letter}"


def test_contaminated_item_is_removed_and_resampling_finds_gold(tmp_path: Path) -> None:
    with FakeOpenAIServer(teacher) as server:
        result = medloom_cli(
            "run",
            str(REPO / "configs" / "meditron_resample.yaml"),
            "--endpoint",
            server.base_url,
            "--limit",
            "3",
            "--runs-dir",
            str(tmp_path),
            "--set",
            "models.teacher.model=fake-model",
            "--set",
            "nodes.teacher.params.max_tries=3",
            "-q",
        )
    assert result.returncode == 0, result.stderr
    run_dir = only_run(tmp_path)
    report = read_report(run_dir)
    assert (report["items"], report["kept"], report["rejected"]) == (3, 1, 2)
    events = [json.loads(line) for line in (run_dir / "trajectories.jsonl").read_text().splitlines()]
    ends = {e["item_id"]: e for e in events if e["type"] == "item_end"}
    # demo-000 is word for word in the demo eval set: removed before any generation, and reported.
    assert (ends["demo-000"]["status"], ends["demo-000"]["reason_code"]) == ("rejected", "contaminated")
    assert "eval set 'demo-eval'" in ends["demo-000"]["reason"] and "eval-001" in ends["demo-000"]["reason"]
    (note,) = [e for e in events if e["type"] == "note" and e["kind"] == "contaminated"]
    assert note["item_id"] == "demo-000" and note["data"]["overlap"] == 1.0
    assert not [e for e in events if e["type"] == "llm_call" and e["item_id"] == "demo-000"]
    # demo-001: the second try matches gold; demo-002 gives up after 3 tries.
    (row,) = ends["demo-001"]["rows"]
    assert (row["predicted"], row["tries"], row["trace_id"]) == ("C", 2, "demo-001/teacher/try2")
    assert ends["demo-002"]["reason_code"] == "no gold match in 3 tries"
    assert ["decontaminate: contaminated", 1] in report["rejection_reasons"]
    (removed,) = report["listings"]["contaminated"]
    assert (removed["item_id"], removed["eval_set"], removed["closest_eval_id"]) == (
        "demo-000",
        "demo-eval",
        "eval-001",
    )
