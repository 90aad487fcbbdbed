"""Issue 12 leftovers: SIGTERM was handled only by the CLI. ``medloom.run()`` called from a script's
main thread was killed outright, leaving its session "running" and no report; it now stops as
cleanly as Ctrl-C does (session interrupted, report written) and exits with status 143, and a
resume finishes the run. A script that handles SIGTERM itself keeps its handler."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from medloom.testing.fake import FakeOpenAIServer
from medloom.testing.mcq_student import McqStudent
from tests.helpers import RECIPE, REPO, medloom_cli, read_report
from tests.reliability.lifecycle import item_ends, sessions, wait_for_run

SCRIPT = textwrap.dedent(
    """
    import signal, sys
    import medloom

    if sys.argv[3] == "own-handler":
        signal.signal(signal.SIGTERM, lambda *_: print("own handler ran", flush=True))
    try:
        medloom.run(sys.argv[1], endpoints=[sys.argv[2]], runs_dir=sys.argv[4], concurrency=2)
    finally:
        print("finally ran", flush=True)
    print("run ended", flush=True)
    """
)


def start_script(tmp_path: Path, url: str, runs: Path, mode: str) -> subprocess.Popen[str]:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(script), str(RECIPE), url, mode, str(runs)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_sigterm_stops_medloom_run_cleanly_and_the_run_resumes(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with FakeOpenAIServer(McqStudent(delay_s=0.05)) as srv:
        proc = start_script(tmp_path, srv.base_url, runs, "default")
        run_dir = wait_for_run(runs, item_ends_at_least=2)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 143, stderr
        assert "finally ran" in stdout and "run ended" not in stdout
        assert "Traceback" not in stderr
        assert f"medloom run --resume {run_dir.name}" in stderr
        assert item_ends(run_dir) < 20, "the run ended before the signal"
        assert sessions(run_dir)[-1]["status"] == "interrupted"
        assert read_report(run_dir)["items"] == item_ends(run_dir)

        resumed = medloom_cli("run", "--resume", run_dir.name, "--runs-dir", str(runs), "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert read_report(run_dir)["items"] == 20
    assert [s["status"] for s in sessions(run_dir)] == ["interrupted", "completed"]


def test_a_script_that_handles_sigterm_keeps_its_handler(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with FakeOpenAIServer(McqStudent(delay_s=0.05)) as srv:
        proc = start_script(tmp_path, srv.base_url, runs, "own-handler")
        run_dir = wait_for_run(runs, item_ends_at_least=1)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "own handler ran" in stdout and "run ended" in stdout
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["sessions"][-1]["status"] == "completed"
    assert read_report(run_dir)["items"] == 20
