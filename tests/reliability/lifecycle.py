"""Helpers for the run-lifecycle tests: start the real CLI in the background, wait for progress."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.helpers import MEDLOOM, RECIPE, REPO


def run_args(url: str, runs_dir: Path, *extra: str) -> list[str]:
    return [str(RECIPE), "--endpoint", url, "--runs-dir", str(runs_dir), "-q", "--concurrency", "2", *extra]


def _sigint_as_at_a_terminal() -> None:
    # A shell starts background jobs with SIGINT ignored, and an ignored SIGINT stays ignored
    # in the children (Python then installs no KeyboardInterrupt): the tests send Ctrl-C as a
    # terminal would, whatever started the test session.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cli(*args: str) -> subprocess.Popen[str]:
    """`medloom ARGS` in the background (its pid is the medloom process's pid)."""
    env = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1"}
    return subprocess.Popen(
        [*MEDLOOM, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_as_at_a_terminal,
    )


def item_ends(run_dir: Path) -> int:
    path = run_dir / "trajectories.jsonl"
    return path.read_bytes().count(b'"type":"item_end"') if path.exists() else 0


def wait_for_run(
    runs_dir: Path, *, item_ends_at_least: int = 1, sessions: int = 1, timeout: float = 60
) -> Path:
    """The run directory once it has ``sessions`` sessions and at least that many finished items."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for meta in runs_dir.glob("[!.]*/run.json") if runs_dir.exists() else []:  # not .creating-*
            try:
                count = len(json.loads(meta.read_text())["sessions"])
            except (OSError, ValueError, KeyError):
                continue
            if count >= sessions and item_ends(meta.parent) >= item_ends_at_least:
                return meta.parent
        time.sleep(0.02)
    raise AssertionError(f"no run in {runs_dir} got going within {timeout} s")


def sessions(run_dir: Path) -> list[dict[str, Any]]:
    return list(json.loads((run_dir / "run.json").read_text())["sessions"])
