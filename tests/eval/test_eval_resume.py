"""`medloom eval` killed with SIGKILL mid-way, then resumed: every item predicted exactly once and
no finished solver call sent again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from medloom.eval.manifest import read_manifest
from medloom.testing.fake import FakeOpenAIServer, FakeRequest
from tests.eval.bench_fixtures import expected, solve, write_benchmark
from tests.helpers import MEDLOOM, REPO, medloom_cli

N = 12
ANSWERED_BEFORE_KILL = 8
"""The endpoint answers this many calls, then holds every later one until the kill."""


class GatedSolver:
    """Answers the first ``open_for`` calls; later ones wait (without blocking the server) until
    :meth:`release`, so the kill finds a known number of finished calls."""

    def __init__(self, open_for: int):
        self.open_for = open_for
        self.gate = threading.Event()

    async def __call__(self, req: FakeRequest) -> str:
        if req.index_in_run >= self.open_for and not self.gate.is_set():
            await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 300)
        return solve(req)

    def release(self) -> None:
        self.gate.set()


def _item_ends(out: Path) -> Counter[tuple[str, str]]:
    """(run id, item id) → how many ``item_end`` events the runs under ``out`` logged."""
    ends: Counter[tuple[str, str]] = Counter()
    for log in out.glob("runs/*/trajectories.jsonl"):
        for line in log.read_text().split("\n")[:-1]:  # whole lines: a run may be writing the last
            if '"item_end"' in line:
                event = json.loads(line)
                if event.get("type") == "item_end":
                    ends[log.parent.name, event["item_id"]] += 1
    return ends


def _wait_for(condition: object, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _wait_for_gate(out: Path, server: FakeOpenAIServer) -> None:
    """Until both solvers started (their runs are in the manifest), every answered call's item is
    logged as done, and each solver holds its two items in flight (``--concurrency 2``) at the gate."""

    def ready() -> bool:
        manifest = read_manifest(out) if (out / "eval.json").exists() else None
        started = manifest is not None and all(s.run_id for s in manifest.solvers)
        done = sum(_item_ends(out).values())
        return started and done == ANSWERED_BEFORE_KILL and server.request_count == ANSWERED_BEFORE_KILL + 4

    _wait_for(ready, "the evaluation to reach the gate")


def _eval_args(url: str, bench: Path, out: Path) -> list[str]:
    configs = [str(REPO / "configs/eval/direct.yaml"), str(REPO / "configs/eval/cot.yaml")]
    return ["eval", *configs, "--dataset", str(bench), "--endpoint", url, "--out", str(out)]


@pytest.mark.slow
def test_sigkill_then_resume_predicts_each_item_once_and_repeats_no_finished_call(tmp_path: Path) -> None:
    bench = write_benchmark(tmp_path / "bench.jsonl", N)
    out = tmp_path / "eval"
    args = [*_eval_args("{url}", bench, out), "--concurrency", "2", "-q"]
    solver = GatedSolver(ANSWERED_BEFORE_KILL)
    with FakeOpenAIServer(solver) as server:
        command = [a.replace("{url}", server.base_url) for a in args]
        proc = subprocess.Popen(
            [*MEDLOOM, *command],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_for_gate(out, server)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        before = server.requests
        assert sum(_item_ends(out).values()) == ANSWERED_BEFORE_KILL < 2 * N
        solver.release()

        resumed = medloom_cli(*command, "--resume", "--json", timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        after = server.requests

    # Every (solver, item) predicted exactly once, each item ended once in its run's log.
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert {(p["solver"], p["item_id"]): p["predicted"] for p in predictions} == expected(N)
    assert len(predictions) == 2 * N
    ends = _item_ends(out)
    assert len(ends) == 2 * N and set(ends.values()) == {1}, "an item was predicted twice"
    manifest = read_manifest(out)
    assert manifest is not None
    run_ids = {s.run_id for s in manifest.solvers}
    assert {p.name for p in (out / "runs").iterdir() if not p.name.startswith(".")} == run_ids
    for run_id in run_ids:
        sessions = json.loads((out / "runs" / str(run_id) / "run.json").read_text())["sessions"]
        assert [s["status"] for s in sessions] == ["interrupted", "completed"]

    # Calls answered before the kill came from the cache on resume; only the four held at the
    # gate (never answered) were sent again.
    answered = Counter(r.prompt_text for r in before[:ANSWERED_BEFORE_KILL])
    sent = Counter(r.prompt_text for r in after)
    assert all(sent[prompt] == 1 for prompt in answered), "a finished call was sent again"
    held = {r.prompt_text for r in before[ANSWERED_BEFORE_KILL:]}
    assert len(sent) == 2 * N  # one distinct call per (solver, item)
    assert sum(sent.values()) == 2 * N + len(held)
    assert all(sent[prompt] == 2 for prompt in held)
    summary = json.loads(resumed.stdout)
    assert sorted((s["solver"], s["n"]) for s in summary["solvers"]) == [("cot", N), ("direct", N)]


def test_resume_refuses_another_benchmark_and_a_new_eval_over_an_old_one(tmp_path: Path) -> None:
    bench = write_benchmark(tmp_path / "bench.jsonl", 3)
    out = tmp_path / "eval"
    with FakeOpenAIServer(solve) as server:
        args = _eval_args(server.base_url, bench, out)
        first = medloom_cli(*args, "-q")
        assert first.returncode == 0, first.stderr
        again = medloom_cli(*args, "-q")
        assert again.returncode == 2 and "add --resume to continue it" in again.stderr
        other = medloom_cli(*args, "--limit", "2", "--resume", "-q")
        assert other.returncode == 2 and "was started differently" in other.stderr
        assert "limit" in other.stderr
        calls = server.request_count
        finished = medloom_cli(*args, "--resume", "--json")
        assert finished.returncode == 0, finished.stderr
        assert server.request_count == calls  # a finished evaluation resumes without a call
    solvers = {s["solver"]: s for s in json.loads(finished.stdout)["solvers"]}
    assert (solvers["direct"]["n"], solvers["direct"]["correct"]) == (3, 2)


def test_resume_reports_a_solver_config_edited_since_the_start(tmp_path: Path) -> None:
    bench = write_benchmark(tmp_path / "bench.jsonl", 2)
    config = tmp_path / "direct.yaml"
    config.write_text((REPO / "configs/eval/direct.yaml").read_text())
    out = tmp_path / "eval"
    with FakeOpenAIServer(solve) as server:
        args = [
            "eval",
            str(config),
            "--dataset",
            str(bench),
            "--endpoint",
            server.base_url,
            "--out",
            str(out),
        ]
        assert medloom_cli(*args, "-q").returncode == 0
        config.write_text(config.read_text().replace("max_tokens: 4", "max_tokens: 6"))
        refused = medloom_cli(*args, "--resume", "-q")
        assert refused.returncode == 2, refused.stderr
        assert "nodes.answer.sampling.max_tokens" in refused.stderr
        accepted = medloom_cli(*args, "--resume", "--accept-config-change", "-q")
        assert accepted.returncode == 0, accepted.stderr


@pytest.mark.slow
def test_sigterm_ends_every_solver_session_interrupted_and_names_resume(tmp_path: Path) -> None:
    bench = write_benchmark(tmp_path / "bench.jsonl", N)
    out = tmp_path / "eval"
    solver = GatedSolver(ANSWERED_BEFORE_KILL)
    with FakeOpenAIServer(solver) as server:
        args = [*_eval_args(server.base_url, bench, out), "--concurrency", "2", "-q"]
        proc = subprocess.Popen(
            [*MEDLOOM, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            _wait_for_gate(out, server)
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
            solver.release()
    assert proc.returncode == 143, stderr
    assert "--resume" in stderr
    manifest = read_manifest(out)
    assert manifest is not None
    for entry in manifest.solvers:
        sessions = json.loads((out / "runs" / str(entry.run_id) / "run.json").read_text())["sessions"]
        assert [s["status"] for s in sessions] == ["interrupted"]
