"""Issue 12 item 3: one process at a time on a run directory.

Two `medloom run --resume ID` at once used to both run, paying for items twice, and the second
marked the first's live session interrupted.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medloom.core.errors import RunError
from medloom.runs.lock import RunLock, RunLocked, lock_held
from medloom.runs.rundir import RunDir, Session
from medloom.testing.fake import FakeOpenAIServer
from medloom.testing.mcq_student import McqStudent
from tests.helpers import medloom_cli, read_report
from tests.reliability.lifecycle import item_ends, run_args, sessions, start_cli, wait_for_run

HOLD = """
import sys, time
from pathlib import Path
from medloom.runs.lock import RunLock
lock = RunLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def _hold_in_child(run_dir: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "locked"
    return child


def test_a_second_holder_is_refused_with_the_holders_pid_and_host(tmp_path: Path) -> None:
    with RunLock(tmp_path):
        with pytest.raises(RunLocked) as refused:
            RunLock(tmp_path).acquire()
        message = str(refused.value)
        assert f"pid {os.getpid()}" in message and socket.gethostname() in message
        assert "\n" not in message
        assert lock_held(tmp_path)
    assert not lock_held(tmp_path)
    RunLock(tmp_path).acquire().release()  # released on exit: free again


def test_the_lock_dies_with_its_holder_even_by_sigkill(tmp_path: Path) -> None:
    child = _hold_in_child(tmp_path)
    try:
        with pytest.raises(RunLocked, match=f"pid {child.pid} "):
            RunLock(tmp_path).acquire()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with RunLock(tmp_path) as lock:  # stale after the holder died: no manual cleanup
        assert lock.held


def test_run_state_trusts_the_lock_over_a_recorded_pid(tmp_path: Path) -> None:
    """A session whose recorded pid is gone (or was reused) is live while some process holds the lock."""
    run = RunDir.create(tmp_path, "r", {"name": "r"}, None)
    meta = run.read_meta()
    meta.sessions.append(Session(started=time.time(), pid=2**22 + 1, host=socket.gethostname()))
    run.write_meta(meta)
    assert run.state() == "interrupted"  # nobody holds it: the pid is dead
    child = _hold_in_child(run.path)
    try:
        assert run.state() == "live"
    finally:
        child.kill()
        child.wait()
    assert run.state() == "interrupted"


def test_two_resumes_of_one_run_at_once_the_second_is_refused(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with FakeOpenAIServer(McqStudent(delay_s=0.3)) as srv:  # slow: the resumed run outlasts the second
        first = start_cli("run", *run_args(srv.base_url, runs))
        run_dir = wait_for_run(runs, item_ends_at_least=2)
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=60) == 130
        done = item_ends(run_dir)
        assert done < 20, "the first run finished before the test could interrupt it"

        resumed = start_cli("run", "--resume", run_dir.name, *run_args(srv.base_url, runs)[1:])
        wait_for_run(runs, sessions=2)
        while sessions(run_dir)[-1]["status"] != "running":
            time.sleep(0.02)
        second = medloom_cli("run", "--resume", run_dir.name, *run_args(srv.base_url, runs)[1:])
        assert resumed.wait(timeout=120) == 0, resumed.stderr.read() if resumed.stderr else ""
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert f"pid {resumed.pid} on host {socket.gethostname()}" in lines[0]
    assert "Traceback" not in second.stderr
    # The refused process touched nothing: two sessions, the live one closed normally.
    assert [s["status"] for s in sessions(run_dir)] == ["interrupted", "completed"]
    report = read_report(run_dir)
    assert report["items"] == 20
    text = (run_dir / "trajectories.jsonl").read_bytes()
    assert text.count(b'"type":"item_end"') == 20  # no item ran twice


def test_an_unwritable_run_directory_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "gone"  # as unwritable as it gets, for root too
    with pytest.raises(RunError, match="cannot lock run gone"):
        RunLock(missing).acquire()
