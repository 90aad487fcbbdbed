"""Issue 12 item 7: a full disk at the start or in the middle of a run ends with one clear line, the
session marked interrupted and nothing half-made; resuming once there is space finishes the run.

The disk is simulated (tests/reliability/full_disk_driver.py wraps the real entry point), so this
runs anywhere, as root or not; a last test uses a real 1 MiB tmpfs where the kernel allows it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from medloom.testing.fake import FakeOpenAIServer
from tests.helpers import REPO, medloom_cli, only_run, read_report
from tests.reliability.lifecycle import run_args, sessions

DRIVER = [sys.executable, "-m", "tests.reliability.full_disk_driver"]


def _run_on_full_disk(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1", **env}
    cmd = [*DRIVER, *args]
    return subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=120)


def _item_end_ids(run_dir: Path) -> Counter[str]:
    ends = Counter[str]()
    for line in (run_dir / "trajectories.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "item_end":
            ends[event["item_id"]] += 1
    return ends


def _one_clear_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "Logging error" not in stderr
    assert "no space left" in lines[0]
    return lines[0]


def test_a_full_disk_at_start_leaves_no_half_made_run(
    tmp_path: Path, student_server: FakeOpenAIServer
) -> None:
    runs = tmp_path / "runs"
    args = run_args(student_server.base_url, runs)
    result = _run_on_full_disk("run", *args, MEDLOOM_TEST_DISK_AT_START="1")
    assert result.returncode == 1
    line = _one_clear_line(result.stderr)
    assert "cannot create a run" in line and "free some space" in line
    assert list(runs.iterdir()) == []  # no run directory, no 0-byte config.yaml, no staging left
    assert student_server.request_count == 0


@pytest.mark.parametrize("everything", [False, True], ids=["trajectory-only", "every-file"])
def test_a_full_disk_mid_run_stops_cleanly_and_resume_recovers(
    tmp_path: Path, student_server: FakeOpenAIServer, everything: bool
) -> None:
    runs = tmp_path / "runs"
    env = {"MEDLOOM_TEST_DISK_ROOM": "40000", "MEDLOOM_TEST_DISK_ALL": "1" if everything else "0"}
    result = _run_on_full_disk("run", *run_args(student_server.base_url, runs), **env)
    assert result.returncode == 1, result.stderr
    run_dir = only_run(runs)
    line = _one_clear_line(result.stderr)
    assert f"run {run_dir.name} stopped" in line and "interrupted" in line
    assert f"medloom run --resume {run_dir.name} --runs-dir {runs}" in line
    assert sessions(run_dir)[-1]["status"] == "interrupted"  # even when run.json had no room to grow
    assert sessions(run_dir)[-1]["ended"] is not None
    partial = (run_dir / "trajectories.jsonl").read_bytes()
    assert not partial.endswith(b"\n")  # the write that hit the full disk landed partly
    if everything:
        assert not (run_dir / "report.json").exists()
    else:
        assert read_report(run_dir)["items"] == partial.count(b'"type":"item_end"') < 20

    # Space is back: resuming finishes the run, every item ending exactly once.
    resumed = medloom_cli("run", "--resume", run_dir.name, "--runs-dir", str(runs), "-q")
    assert resumed.returncode == 0, resumed.stderr
    report = read_report(run_dir)
    assert report["items"] == 20 and report["failed"] == 0
    assert set(_item_end_ids(run_dir).values()) == {1}
    assert [s["status"] for s in sessions(run_dir)] == ["interrupted", "completed"]


def _tmpfs_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _tmpfs_available(), reason="needs unshare and a mountable tmpfs")
def test_a_real_full_tmpfs(tmp_path: Path, student_server: FakeOpenAIServer) -> None:
    """The same on a real 1 MiB tmpfs (a private mount namespace; nothing to clean up)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    out = tmp_path / "out"
    args = " ".join(run_args(student_server.base_url, mnt / "runs", "--no-cache"))
    script = f"""
set -u
mount -t tmpfs -o size=1m tmpfs {mnt}
mkdir -p {mnt}/runs
{sys.executable} -m medloom.cli.main run {args} > {tmp_path}/first.out 2> {tmp_path}/first.err
echo $? > {tmp_path}/first.code
cp -a {mnt}/runs {out}
run=$(ls {mnt}/runs | head -1)
rm -f {mnt}/filler
{sys.executable} -m medloom.cli.main run --resume "$run" --runs-dir {mnt}/runs -q --set run.concurrency=2 \
    > /dev/null 2> {tmp_path}/second.err
echo $? > {tmp_path}/second.code
cp -a {mnt}/runs/"$run"/report.json {out}/"$run"/final-report.json
"""
    # fill the tmpfs up to ~ 64 KiB free before the run starts
    script = script.replace(
        f"mkdir -p {mnt}/runs\n",
        f"mkdir -p {mnt}/runs\nhead -c $((1024*1024-64*1024)) /dev/zero > {mnt}/filler 2>/dev/null || true\n",
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", "COLUMNS": "160"}
    subprocess.run(["unshare", "-Urm", "sh", "-c", script], cwd=REPO, env=env, check=True, timeout=300)
    first_code = int((tmp_path / "first.code").read_text())
    stderr = (tmp_path / "first.err").read_text()
    assert first_code == 1, stderr
    _one_clear_line(stderr)
    run_dir = only_run(out)
    assert sessions(run_dir)[-1]["status"] == "interrupted"
    assert int((tmp_path / "second.code").read_text()) == 0, (tmp_path / "second.err").read_text()
    final = json.loads((run_dir / "final-report.json").read_text())
    assert final["items"] == 20 and final["failed"] == 0
