"""SIGKILL a run at random points (during start-up, mid-run, while writing outputs) and resume:
no item lost, none duplicated, and no paid call repeated beyond those in flight at the kill."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from multiprocessing.process import BaseProcess
from pathlib import Path

import pytest

import medloom
from medloom.testing.fake import FakeOpenAIServer
from medloom.testing.mcq_student import McqStudent
from tests.helpers import RECIPE, only_run, read_report

TRIALS = 10
CONCURRENCY = 4
ITEMS = 10  # the first half of the demo recipe's questions
COUNTS = ("items", "kept", "rejected", "failed", "rows")


def _run(url: str, runs: Path, resume: str | None = None) -> None:
    """The job: the demo recipe on ``ITEMS`` items (or resume ``resume``)."""
    config = None if resume else RECIPE
    medloom.run(config, endpoints=[url], runs_dir=runs, concurrency=CONCURRENCY, limit=ITEMS, resume=resume)


def _start(url: str, runs: Path) -> BaseProcess:
    """The job in a child forked from a server that has medloom imported already (so a trial
    costs the run, not the imports), as a separate process that SIGKILL ends abruptly."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["medloom", "medloom.runs.runner", "datasets", "pyarrow.parquet"])
    proc = ctx.Process(target=_run, args=(url, runs), daemon=True)
    proc.start()
    return proc


def _ends(run_dir: Path) -> list[str]:
    path = run_dir / "trajectories.jsonl"
    if not path.exists():
        return []
    ids = []
    # Only whole lines: while the run writes, the last line may be half there.
    for line in path.read_bytes().split(b"\n")[:-1]:
        if b'"type":"item_end"' in line:
            ids.append(json.loads(line)["item_id"])
    return ids


def _rows(run_dir: Path) -> list[tuple[str, str, str]]:
    rows = [json.loads(line) for line in (run_dir / "data.jsonl").read_text().splitlines() if line]
    return sorted((r["item_id"], r["trace_id"], r["predicted"]) for r in rows)


def _kill_at(proc: BaseProcess, runs: Path, target: int, extra_s: float) -> Path | None:
    """SIGKILL the run once ``target`` items have ended (plus ``extra_s``); its run dir, if any."""
    deadline = time.monotonic() + 60
    run_dir: Path | None = None
    while time.monotonic() < deadline and proc.is_alive():
        found = list(runs.glob("[!.]*/run.json")) if runs.exists() else []
        run_dir = found[0].parent if found else None
        if (target < 0 and run_dir is None) or (run_dir and len(_ends(run_dir)) >= target):
            break
        time.sleep(0.005)
    time.sleep(extra_s)
    assert proc.pid is not None
    with contextlib.suppress(ProcessLookupError):  # it may have finished on its own meanwhile
        os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    found = list(runs.glob("[!.]*/run.json")) if runs.exists() else []
    return found[0].parent if found else None


@pytest.mark.slow
def test_random_sigkills_then_resume_lose_and_repeat_nothing(tmp_path: Path) -> None:
    with FakeOpenAIServer(McqStudent(delay_s=0.02)) as srv:
        _run(srv.base_url, tmp_path / "base")
        baseline_requests = srv.request_count
    baseline_dir = only_run(tmp_path / "base")
    baseline = read_report(baseline_dir)
    assert baseline["items"] == ITEMS and baseline["failed"] == 0
    baseline_rows = _rows(baseline_dir)

    rng = random.Random(7)
    # Kill points: -1 = during start-up (maybe before the run directory exists), 0..ITEMS-1 =
    # after that many items ended, ITEMS = while the outputs are being written.
    targets = [-1, ITEMS, *rng.sample(range(ITEMS), TRIALS - 2)]
    seen_phases: Counter[str] = Counter()
    for trial, target in enumerate(targets):
        runs = tmp_path / f"trial{trial}"
        with FakeOpenAIServer(McqStudent(delay_s=0.02)) as srv:
            proc = _start(srv.base_url, runs)
            run_dir = _kill_at(proc, runs, target, rng.uniform(0, 0.05))
            sessions = 1
            if proc.exitcode == 0:  # the last items and the outputs beat the kill: nothing to resume
                assert target == ITEMS, (trial, target)
                seen_phases["finished before the kill"] += 1
            elif run_dir is None:  # killed before it made anything: start again from scratch
                assert proc.exitcode == -signal.SIGKILL, (trial, target, proc.exitcode)
                seen_phases["before the run directory"] += 1
                _run(srv.base_url, runs)
            else:
                assert proc.exitcode == -signal.SIGKILL, (trial, target, proc.exitcode)
                done = len(_ends(run_dir))
                seen_phases["mid-run" if done < ITEMS else "after the last item"] += 1
                started = json.loads((run_dir / "run.json").read_text())["sessions"]
                _run(srv.base_url, runs, resume=run_dir.name)
                sessions = len(started) + 1
            requests = srv.requests
        run_dir = only_run(runs)
        report = read_report(run_dir)
        assert {k: report[k] for k in COUNTS} == {k: baseline[k] for k in COUNTS}, (trial, target)
        assert report["sessions"] == sessions

        ends = Counter(_ends(run_dir))
        assert len(ends) == ITEMS and set(ends.values()) == {1}, (trial, target, ends)  # each item once
        assert _rows(run_dir) == baseline_rows, (trial, target)  # nothing lost, nothing duplicated

        # Every distinct call the uninterrupted run made was made here too; only calls in flight
        # at the kill (items in flight × parallel calls per item) were sent twice.
        bodies = Counter(json.dumps(r.body, sort_keys=True) for r in requests)
        assert len(bodies) == baseline_requests, (trial, target)
        repeats = sum(1 for r in requests if r.attempt > 0)
        assert repeats <= CONCURRENCY * 4, (trial, target, repeats)
    assert seen_phases["mid-run"] >= TRIALS // 2, seen_phases
