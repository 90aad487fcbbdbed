"""Shared helpers for tests: run the real CLI, read run directories."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "mcq_refine.yaml"
MEDLOOM = [sys.executable, "-m", "medloom.cli.main"]


def medloom_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the real `medloom` entry point in a subprocess."""
    full_env = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [*MEDLOOM, *args], cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def read_report(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "report.json").read_text()))


def only_run(runs_dir: Path) -> Path:
    runs = [p for p in runs_dir.iterdir() if (p / "run.json").exists()]
    assert len(runs) == 1, runs
    return runs[0]
