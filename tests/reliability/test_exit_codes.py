"""Issue 12 item 6 (and the empty-dataset items): `medloom run`'s documented exit codes, through the
real entry point. Before, a run whose every item failed exited 0, as did one with no items at all."""

from __future__ import annotations

import json
import shlex
import signal
from pathlib import Path

import pytest
import yaml

from medloom.testing.fake import FakeOpenAIServer, Reply, ScriptedResponder
from medloom.testing.mcq_student import McqStudent
from tests.helpers import RECIPE, medloom_cli, only_run, read_report
from tests.reliability.lifecycle import item_ends, run_args, sessions, start_cli, wait_for_run


def _recipe_with_dataset(tmp_path: Path, rows: list[str]) -> Path:
    data_file = tmp_path / "rows.jsonl"
    data_file.write_text("".join(f"{r}\n" for r in rows))
    data = yaml.safe_load(RECIPE.read_text())
    data["dataset"]["path"] = str(data_file)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(data))
    return recipe


def test_every_item_kept_or_rejected_exits_0(tmp_path: Path, student_server: FakeOpenAIServer) -> None:
    result = medloom_cli("run", *run_args(student_server.base_url, tmp_path), "--limit", "4")
    assert result.returncode == 0, result.stderr
    report = read_report(only_run(tmp_path))
    assert report["items"] == 4 and report["failed"] == 0


def test_items_that_failed_exit_3(tmp_path: Path) -> None:
    with FakeOpenAIServer(ScriptedResponder(default=Reply.error(401, message="bad key"))) as srv:
        result = medloom_cli("run", *run_args(srv.base_url, tmp_path), "--limit", "3")
    assert result.returncode == 3, result.stderr
    report = read_report(only_run(tmp_path))
    assert report["failed"] == 3


def test_a_config_error_exits_2(tmp_path: Path, student_server: FakeOpenAIServer) -> None:
    result = medloom_cli(
        "run", *run_args(student_server.base_url, tmp_path), "--set", "nodes.generate.samples=many"
    )
    assert result.returncode == 2
    assert "nodes.generate.samples" in result.stderr
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_an_empty_dataset_warns_and_exits_4(tmp_path: Path, student_server: FakeOpenAIServer) -> None:
    recipe = _recipe_with_dataset(tmp_path, [])
    result = medloom_cli(
        "run", str(recipe), "--endpoint", student_server.base_url, "--runs-dir", str(tmp_path / "runs")
    )
    assert result.returncode == 4, result.stderr
    assert "warning" in result.stderr and "dataset is empty" in result.stderr
    assert read_report(only_run(tmp_path / "runs"))["items"] == 0


def test_a_dataset_whose_rows_were_all_skipped_warns_and_exits_4(
    tmp_path: Path, student_server: FakeOpenAIServer
) -> None:
    rows = [json.dumps({"id": f"r{i}", "stem": "no question column", "answer": "A"}) for i in range(3)]
    recipe = _recipe_with_dataset(tmp_path, rows)
    result = medloom_cli(
        "run", str(recipe), "--endpoint", student_server.base_url, "--runs-dir", str(tmp_path / "runs")
    )
    assert result.returncode == 4, result.stderr
    assert "all 3 input rows were skipped" in result.stderr
    report = read_report(only_run(tmp_path / "runs"))
    assert report["items"] == 0 and report["skipped_rows"] == 3


@pytest.mark.parametrize(
    ("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "SIGTERM")]
)
def test_a_signal_ends_the_session_interrupted_and_prints_the_resume_command(
    tmp_path: Path, sig: signal.Signals, code: int, word: str
) -> None:
    runs = tmp_path / "my runs"
    with FakeOpenAIServer(McqStudent(delay_s=0.05)) as srv:
        proc = start_cli("run", *run_args(srv.base_url, runs))
        run_dir = wait_for_run(runs, item_ends_at_least=2)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == code, stderr
        assert item_ends(run_dir) < 20, "the run ended before the signal"
        assert word in stderr and "Traceback" not in stderr
        assert sessions(run_dir)[-1]["status"] == "interrupted"
        assert read_report(run_dir)["items"] == item_ends(run_dir)  # the report was written
        command = stderr.split("resumable: ", 1)[1].strip()
        assert command == f"medloom run --resume {run_dir.name} --runs-dir {shlex.quote(str(runs))}"

        # The printed command, as printed, finishes the run.
        argv = [*shlex.split(command)[1:], "-q"]
        resumed = medloom_cli(*argv)
    assert resumed.returncode == 0, resumed.stderr
    assert read_report(run_dir)["items"] == 20
    assert [s["status"] for s in sessions(run_dir)] == ["interrupted", "completed"]
