"""Budget caps (issue 19) through the real CLI against the fake endpoint: each cap stops the run
cleanly (no new item, items in flight finish, exit 5, the cap and the spend in report.json and
run.json), a resume goes on only under a raised cap without losing, repeating or paying again for
anything, and cached calls are never charged."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from medloom.testing.fake import FakeOpenAIServer
from tests.helpers import medloom_cli, only_run, read_report
from tests.reliability.lifecycle import run_args, sessions

LIMIT = 10
BUDGET_STOP = 5


def events(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    lines = (run_dir / "trajectories.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("type") == kind]


def assert_nothing_half_recorded(run_dir: Path) -> None:
    """Every item that started ended in the same session, and no item ran twice."""
    started = Counter((e["item_id"], e["attempt"]) for e in events(run_dir, "item_started"))
    ended = Counter((e["item_id"], e["attempt"]) for e in events(run_dir, "item_end"))
    assert started == ended
    assert max(Counter(item for item, _ in started).values()) == 1


def assert_stopped_by(run_dir: Path, cap: str, limit: float) -> dict[str, Any]:
    report = read_report(run_dir)
    assert report["stopped_by"]["cap"] == cap and report["stopped_by"]["limit"] == limit
    assert 0 < report["items"] < LIMIT
    session = sessions(run_dir)[-1]
    assert session["status"] == "stopped" and session["stopped_by"]["cap"] == cap
    assert_nothing_half_recorded(run_dir)
    return report


def run(url: str, runs: Path, *extra: str) -> tuple[int, str]:
    result = medloom_cli("run", *run_args(url, runs, "--limit", str(LIMIT), *extra))
    return result.returncode, result.stderr


def test_max_calls_stops_the_run_and_names_the_cap(tmp_path: Path, student_server: FakeOpenAIServer) -> None:
    code, stderr = run(student_server.base_url, tmp_path, "--max-calls", "3")
    assert code == BUDGET_STOP, stderr
    run_dir = only_run(tmp_path)
    report = assert_stopped_by(run_dir, "max_calls", 3)
    assert report["spend"]["calls"] >= 3
    # Every item costs at least one paid call, so at most 3 + (2 in flight) items started.
    assert report["items"] <= 3 + 2
    assert "max_calls=3 reached" in stderr and f"--resume {run_dir.name}" in stderr


def test_max_tokens_from_the_config_key_stops_the_run(
    tmp_path: Path, student_server: FakeOpenAIServer
) -> None:
    code, stderr = run(student_server.base_url, tmp_path, "--set", "run.budget.max_tokens=500")
    assert code == BUDGET_STOP, stderr
    report = assert_stopped_by(only_run(tmp_path), "max_tokens", 500)
    assert report["spend"]["tokens"] == report["prompt_tokens"] + report["completion_tokens"] >= 500


def test_max_cost_counts_at_the_configured_prices(tmp_path: Path, student_server: FakeOpenAIServer) -> None:
    prices = ["--set", "llm.prices.fake-model.prompt=100", "--set", "llm.prices.fake-model.completion=100"]
    code, stderr = run(student_server.base_url, tmp_path, *prices, "--max-cost", "0.2")
    assert code == BUDGET_STOP, stderr
    report = assert_stopped_by(only_run(tmp_path), "max_cost", 0.2)
    tokens = report["prompt_tokens"] + report["completion_tokens"]
    assert report["spend"]["cost"] == pytest.approx(tokens * 100 / 1e6, rel=1e-3)
    assert report["spend"]["cost"] >= 0.2


def test_a_cost_cap_without_prices_is_a_config_error(
    tmp_path: Path, student_server: FakeOpenAIServer
) -> None:
    code, stderr = run(student_server.base_url, tmp_path, "--max-cost", "1")
    assert code == 2
    assert "run.budget.max_cost" in stderr and "llm.prices" in stderr and "Traceback" not in stderr
    assert not tmp_path.exists() or not list(tmp_path.glob("*/run.json"))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--max-calls", "0"], "--max-calls"),
        (["--set", "run.budget.max_dollars=3"], "run.budget.max_dollars"),
    ],
)
def test_bad_caps_are_config_errors(
    tmp_path: Path, student_server: FakeOpenAIServer, args: list[str], says: str
) -> None:
    code, stderr = run(student_server.base_url, tmp_path, *args)
    assert code == 2 and says in stderr and "Traceback" not in stderr


def test_resume_goes_on_only_under_a_raised_cap_and_pays_nothing_twice(
    tmp_path: Path, student_server: FakeOpenAIServer
) -> None:
    url = student_server.base_url
    code, stderr = run(url, tmp_path, "--max-calls", "3")
    assert code == BUDGET_STOP, stderr
    run_dir = only_run(tmp_path)
    first = read_report(run_dir)
    paid = student_server.request_count

    # The same cap again: nothing starts and nothing is paid.
    again = medloom_cli("run", "--resume", run_dir.name, "--runs-dir", str(tmp_path), "-q")
    assert again.returncode == BUDGET_STOP, again.stderr
    assert student_server.request_count == paid
    assert read_report(run_dir)["items"] == first["items"]

    # A raised cap finishes the run: every input item once, none lost, none run twice.
    raised = medloom_cli(
        "run", "--resume", run_dir.name, "--runs-dir", str(tmp_path), "-q", "--max-calls", "100000"
    )
    assert raised.returncode == 0, raised.stderr
    report = read_report(run_dir)
    assert report["items"] == LIMIT and report["stopped_by"] is None
    assert_nothing_half_recorded(run_dir)
    assert [s["status"] for s in sessions(run_dir)] == ["stopped", "stopped", "completed"]
    ended = {e["item_id"] for e in events(run_dir, "item_end")}
    assert len(ended) == LIMIT
    rows = [json.loads(line) for line in (run_dir / "data.jsonl").read_text().splitlines()]
    assert {r["item_id"] for r in rows} <= ended
    assert report["spend"]["calls"] >= first["spend"]["calls"]


def test_cached_calls_are_not_charged(tmp_path: Path, student_server: FakeOpenAIServer) -> None:
    runs = tmp_path / "runs"
    code, stderr = run(student_server.base_url, runs, "--limit", "3")
    assert code == 0, stderr
    paid = student_server.request_count
    first = only_run(runs)

    # A new run of the same items shares the request cache: every call is a free hit.
    code, stderr = run(student_server.base_url, runs, "--limit", "3", "--max-calls", "1")
    assert code == 0, stderr
    (second,) = [p for p in runs.iterdir() if (p / "run.json").exists() and p != first]
    report = read_report(second)
    assert report["items"] == 3 and report["stopped_by"] is None
    assert report["spend"]["calls"] == 0 and report["spend"]["tokens"] == 0
    assert report["cached_calls"] == report["calls"] > 0
    assert student_server.request_count == paid
