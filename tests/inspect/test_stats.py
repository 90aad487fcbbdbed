"""`medloom stats`: statistics computed from the trajectories, as tables and as JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from medloom.runs.rundir import RunDir
from medloom.runs.stats import bucket_size, compute_stats
from tests.helpers import medloom_cli


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
