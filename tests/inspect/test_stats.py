"""`medloom stats`: statistics computed from the trajectories, as tables and as JSON."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml
from rich.console import Console
from textual.widgets import Static

from medloom.runs.fold import compute_stats
from medloom.runs.rundir import STALE_S, RunDir
from medloom.runs.stats import bucket_size, stats_json
from medloom.tui.app import InspectApp
from medloom.tui.stats_tables import render_stats
from tests.helpers import medloom_cli
from tests.inspect.test_app import text_of


def test_stats_agree_with_the_report_and_split_usage_by_node(mcq_run: Path) -> None:
    stats = compute_stats(RunDir(mcq_run))
    report = json.loads((mcq_run / "report.json").read_text())
    rep = stats.report
    assert (rep.items, rep.kept, rep.rejected, rep.failed) == (
        report["items"],
        report["kept"],
        report["rejected"],
        report["failed"],
    )
    assert rep.kept and rep.rejected and rep.failed == 1
    nodes = {u.node for u in stats.usage}
    assert {"generate", "refine", "judge"} <= nodes
    assert sum(u.calls for u in stats.usage) == report["calls"]
    assert sum(u.failed_calls for u in stats.usage) >= 1  # the failing item's generator call
    assert sum(u.completion_tokens for u in stats.usage) == report["completion_tokens"]
    verify_rounds = [r for r in stats.rounds if r.node == "verify"]
    assert [r.round for r in verify_rounds] == sorted(r.round for r in verify_rounds)
    assert sum(r.passed for r in verify_rounds) == report["nodes"]["verify"]["passed"]
    assert sum(b.items for b in stats.throughput) == rep.items
    assert sum(b.kept for b in stats.throughput) == rep.kept
    assert set(stats.latency_by_node) <= nodes
    assert not stats.live


def test_costs_use_the_prices_in_the_run_config(mcq_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / mcq_run.name
    shutil.copytree(mcq_run, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config.setdefault("llm", {})["prices"] = {"fake-model": {"prompt": 1.0, "completion": 2.0}}
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    stats = compute_stats(RunDir(copy))
    for row in stats.usage:
        assert abs(row.cost - (row.prompt_tokens * 1.0 + row.completion_tokens * 2.0) / 1e6) < 1e-6
    assert stats.report.cost > 0


def test_bucket_size_keeps_the_timeline_short() -> None:
    assert bucket_size(0.5) == 1
    assert bucket_size(100) == 10
    assert 7200 / bucket_size(7200) <= 12


def test_stats_cli_prints_the_tables(mcq_run: Path) -> None:
    result = medloom_cli("stats", str(mcq_run))
    assert result.returncode == 0, result.stderr
    for title in (
        "nodes",
        "pass rate by refinement round",
        "tokens and cost",
        "latency",
        "throughput",
        "rejection reasons",
        "failure reasons",
    ):
        assert title in result.stdout, title
    assert "still failing mcq_answer after 2 refinement rounds" in result.stdout
    assert "context length exceeded" in result.stdout


def test_stats_cli_json_is_machine_readable(mcq_run: Path) -> None:
    result = medloom_cli("stats", mcq_run.name, "--runs-dir", str(mcq_run.parent), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    report = json.loads((mcq_run / "report.json").read_text())
    assert data["report"]["kept"] == report["kept"]
    assert data["report"]["rejection_reasons"][0][1] == report["rejected"]
    assert {row["node"] for row in data["usage"]} >= {"generate", "judge"}
    assert all("tokens_per_s" in b for b in data["throughput"])


def test_stats_cli_names_an_unknown_run(tmp_path: Path) -> None:
    result = medloom_cli("stats", "no-such-run", "--runs-dir", str(tmp_path))
    assert result.returncode == 1
    assert "no run 'no-such-run'" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_the_inspection_commands_and_view_names_an_unknown_run(tmp_path: Path) -> None:
    helped = medloom_cli("--help")
    for command in ("view", "stats", "export"):
        assert command in helped.stdout
    result = medloom_cli("view", "nope", "--runs-dir", str(tmp_path))
    assert result.returncode == 1 and "no run 'nope'" in result.stderr


def test_stats_of_a_run_still_going(mcq_run: Path, tmp_path: Path) -> None:
    run = tmp_path / mcq_run.name
    shutil.copytree(mcq_run, run)
    (run / "report.json").unlink()
    meta = json.loads((run / "run.json").read_text())
    meta["sessions"][-1].update(status="running", ended=None)
    (run / "run.json").write_text(json.dumps(meta))
    lines = (run / "trajectories.jsonl").read_bytes().splitlines(keepends=True)
    (run / "trajectories.jsonl").write_bytes(b"".join(lines[: len(lines) // 2]) + lines[-1][:30])
    stats = compute_stats(RunDir(run))
    assert stats.live
    finished = sum(b'"type":"item_end"' in line for line in lines[: len(lines) // 2])
    assert stats.report.items == finished < json.loads((mcq_run / "report.json").read_text())["items"]
    assert stats.usage and sum(b.items for b in stats.throughput) == finished


def _running_copy(mcq_run: Path, tmp_path: Path, **session: object) -> RunDir:
    """A copy of ``mcq_run`` whose last session is still marked running, with ``session`` fields."""
    run = tmp_path / mcq_run.name
    shutil.copytree(mcq_run, run)
    meta = json.loads((run / "run.json").read_text())
    meta["sessions"][-1].update(status="running", ended=None, **session)
    (run / "run.json").write_text(json.dumps(meta))
    return RunDir(run)


def test_a_killed_run_is_interrupted_not_live(mcq_run: Path, tmp_path: Path) -> None:
    recorded = json.loads((mcq_run / "run.json").read_text())["sessions"][-1]
    assert recorded["pid"] > 0 and recorded["host"] == socket.gethostname()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid no longer exists
    run = _running_copy(mcq_run, tmp_path, pid=gone.pid, host=socket.gethostname())
    stats = compute_stats(run)
    assert stats.interrupted and not stats.live
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    console.print(render_stats(stats))
    title = " ".join(console.export_text().split("┏")[0].split())  # the overview's (wrapped) title
    assert title.endswith(f"— interrupted (resume with medloom run --resume {run.run_id})")
    assert "live" not in title
    assert stats_json(stats)["interrupted"] is True


def test_a_running_session_is_live_while_its_process_is(mcq_run: Path, tmp_path: Path) -> None:
    run = _running_copy(mcq_run, tmp_path, pid=os.getpid(), host=socket.gethostname())
    stats = compute_stats(run)
    assert stats.live and not stats.interrupted
    # The same pid, but the session started long before this process: the pid was reused.
    reused = _running_copy(
        mcq_run, tmp_path / "reused", pid=os.getpid(), host=socket.gethostname(), started=1.0
    )
    assert reused.state() == "interrupted"


def test_without_a_pid_a_run_is_dead_once_its_trajectories_go_stale(mcq_run: Path, tmp_path: Path) -> None:
    run = _running_copy(mcq_run, tmp_path, pid=None, host=None)
    assert run.state() == "live"  # just written
    old = time.time() - STALE_S - 60
    os.utime(run.trajectories, (old, old))
    assert run.state() == "interrupted"
    # A pid on another host cannot be checked from here: the file's age decides too.
    other = _running_copy(mcq_run, tmp_path / "other", pid=os.getpid(), host="elsewhere")
    os.utime(other.trajectories, (old, old))
    assert other.state() == "interrupted"


async def test_the_viewer_bar_says_a_killed_run_is_interrupted(mcq_run: Path, tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run = _running_copy(mcq_run, tmp_path, pid=gone.pid, host=socket.gethostname())
    app = InspectApp(run.path, poll_s=0, use_cache=False)
    async with app.run_test(size=(80, 24)):
        assert "interrupted" in text_of(app.query_one("#bar", Static))
    finished = InspectApp(mcq_run, poll_s=0, use_cache=False)
    async with finished.run_test(size=(80, 24)):
        assert "interrupted" not in text_of(finished.query_one("#bar", Static))
