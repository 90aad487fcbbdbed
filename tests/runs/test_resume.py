"""A run killed with SIGKILL and resumed ends like an uninterrupted run, paying no call twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from medloom.runs.rundir import RunDir
from medloom.testing.fake import FakeOpenAIServer
from medloom.testing.mcq_student import McqStudent
from tests.helpers import MEDLOOM, RECIPE, medloom_cli, only_run, read_report

CONCURRENCY = 4


def _item_ends(trajectories: Path) -> int:
    if not trajectories.exists():
        return 0
    return trajectories.read_bytes().count(b'"type":"item_end"')


def _rows(run_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run_dir / "data.jsonl").read_text().splitlines() if line]


def _run_args(url: str, runs_dir: Path) -> list[str]:
    return [
        str(RECIPE),
        "--endpoint",
        url,
        "--runs-dir",
        str(runs_dir),
        "--concurrency",
        str(CONCURRENCY),
        "-q",
    ]


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    # Uninterrupted baseline, with its own cache.
    with FakeOpenAIServer(McqStudent(delay_s=0.02)) as srv:
        base = medloom_cli("run", *_run_args(srv.base_url, tmp_path / "base"))
        assert base.returncode == 0, base.stderr
        baseline_requests = srv.request_count
    baseline = read_report(only_run(tmp_path / "base"))
    assert baseline["items"] == 20 and baseline["failed"] == 0

    # The same job, killed mid-way, then resumed.
    with FakeOpenAIServer(McqStudent(delay_s=0.02)) as srv:
        runs = tmp_path / "crash"
        proc = subprocess.Popen(
            [*MEDLOOM, "run", *_run_args(srv.base_url, runs)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        run_dir: Path | None = None
        while time.monotonic() < deadline:
            found = [p for p in runs.glob("*/trajectories.jsonl")] if runs.exists() else []
            if found and _item_ends(found[0]) >= 7:
                run_dir = found[0].parent
                break
            time.sleep(0.01)
        assert run_dir is not None, "the run never got going"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        done_at_kill = _item_ends(run_dir / "trajectories.jsonl")
        assert done_at_kill < 20, "killed too late to test anything"
        meta = json.loads((run_dir / "run.json").read_text())
        assert meta["sessions"][0]["status"] == "running"  # never closed: it was killed
        assert RunDir(run_dir).state() == "interrupted"  # its pid is gone

        resumed = medloom_cli("run", "--resume", run_dir.name, *_run_args(srv.base_url, runs)[1:])
        assert resumed.returncode == 0, resumed.stderr
        requests = srv.requests
    report = read_report(run_dir)
    for key in ("items", "kept", "rejected", "failed", "rows"):
        assert report[key] == baseline[key], key
    assert report["sessions"] == 2
    first = json.loads((run_dir / "run.json").read_text())["sessions"][0]
    assert first["status"] == "interrupted" and first["ended"] >= first["started"]

    rows = _rows(run_dir)
    assert len(rows) == report["rows"]
    assert len({r["item_id"] for r in rows}) == len(rows), "duplicate rows"
    base_rows = _rows(only_run(tmp_path / "base"))
    assert sorted((r["item_id"], r["trace_id"], r["predicted"]) for r in rows) == sorted(
        (r["item_id"], r["trace_id"], r["predicted"]) for r in base_rows
    )

    # Paid calls: everything finished before the kill came from the cache on resume, so only
    # the calls in flight at the kill can have been sent twice.
    repeats = sum(1 for r in requests if r.attempt > 0)
    bodies = Counter(json.dumps(r.body, sort_keys=True) for r in requests)
    assert len(bodies) == baseline_requests
    in_flight_bound = CONCURRENCY * 4  # items in flight × parallel calls per item
    assert repeats <= in_flight_bound, f"{repeats} repeated calls"
    assert len(requests) <= baseline_requests + in_flight_bound


def test_resume_of_a_finished_run_does_nothing(tmp_path: Path, student_server: FakeOpenAIServer) -> None:
    args = _run_args(student_server.base_url, tmp_path)
    first = medloom_cli("run", *args)
    assert first.returncode == 0, first.stderr
    run_dir = only_run(tmp_path)
    before = read_report(run_dir)
    sent = student_server.request_count
    again = medloom_cli("run", "--resume", run_dir.name, *args[1:])
    assert again.returncode == 0, again.stderr
    assert student_server.request_count == sent
    after = read_report(run_dir)
    assert {k: after[k] for k in ("items", "kept", "rejected", "failed", "rows")} == {
        k: before[k] for k in ("items", "kept", "rejected", "failed", "rows")
    }
    assert len(_rows(run_dir)) == before["rows"]


def test_rerun_pays_nothing_thanks_to_the_cache(tmp_path: Path, student_server: FakeOpenAIServer) -> None:
    args = _run_args(student_server.base_url, tmp_path)
    assert medloom_cli("run", *args).returncode == 0
    sent = student_server.request_count
    second = medloom_cli("run", *args)
    assert second.returncode == 0, second.stderr
    assert student_server.request_count == sent
    runs = sorted(p for p in tmp_path.iterdir() if (p / "run.json").exists())
    report = read_report(runs[-1])
    assert report["calls"] == report["cached_calls"] > 0
    assert report["completion_tokens"] == 0
