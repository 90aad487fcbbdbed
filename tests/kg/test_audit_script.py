"""scripts/audit_kg_rows.py, the verifier-independent audit, on the SLC9A1 row of issue 13."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO
from tests.verifiers.test_kg_gaps import SLC9A1_QUESTION, slc9a1_path

SCRIPT = REPO / "scripts" / "audit_kg_rows.py"
STEPS = ["SLC9A1 is associated with Barrett's esophagus.", "Barrett's esophagus resembles stomach cancer."]


def audit(tmp_path: Path, question: str, steps: list[str]) -> subprocess.CompletedProcess[str]:
    row = {
        "item_id": "slc9a1",
        "question": question,
        "path": slc9a1_path().model_dump_json(),
        "steps": [{"index": i, "text": s} for i, s in enumerate(steps, 1)],
    }
    (tmp_path / "data.jsonl").write_text(json.dumps(row) + "\n")
    return subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True)


def test_the_audit_flags_the_slipped_row_and_passes_a_faithful_one(tmp_path: Path) -> None:
    slipped = audit(
        tmp_path, SLC9A1_QUESTION, [*STEPS[:1], "The disease is associated with a spinal cancer.", *STEPS[1:]]
    )
    assert slipped.returncode == 1
    assert "reasoning states an edge outside the KG: 1" in slipped.stdout
    assert "question misdescribes its path:      1" in slipped.stdout
    assert "spinal cancer, not on the row's path" in slipped.stdout
    faithful = audit(tmp_path, "SLC9A1 is associated with a disease that resembles which disease?", STEPS)
    assert faithful.returncode == 0, faithful.stdout
