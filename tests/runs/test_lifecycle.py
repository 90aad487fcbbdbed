"""Issue 12's run-lifecycle rough edges: resume of an unknown run, resume after the recipe was edited,
a damaged run.json, a crash's reason in medloom.log, and `medloom.run` inside a running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

import medloom
from medloom.graphs.engine import Engine
from medloom.runs.rundir import RunStorageError
from medloom.runs.store import TrajectoryWriter
from medloom.testing.fake import FakeOpenAIServer
from tests.helpers import RECIPE, REPO, medloom_cli, only_run, read_report


def _recipe(tmp_path: Path) -> Path:
    data = yaml.safe_load(RECIPE.read_text())
    data["dataset"]["path"] = str(REPO / "configs" / "data" / "demo_mcq.jsonl")
    path = tmp_path / "recipe.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _first_run(tmp_path: Path, url: str, *extra: str) -> tuple[Path, Path]:
    recipe = _recipe(tmp_path)
    runs = tmp_path / "runs"
    result = medloom_cli("run", str(recipe), "--endpoint", url, "--runs-dir", str(runs), "-q", *extra)
    assert result.returncode == 0, result.stderr
    return recipe, only_run(runs)


def test_resume_of_an_unknown_run_lists_the_run_ids(tmp_path: Path, student_server: FakeOpenAIServer) -> None:
    _, run_dir = _first_run(tmp_path, student_server.base_url, "--limit", "1")
    result = medloom_cli("run", "--resume", "nonexist", "--runs-dir", str(run_dir.parent))
    assert result.returncode == 1
    assert "no run 'nonexist'" in result.stderr
    assert run_dir.name in result.stderr and "run.json" not in result.stderr
    empty = medloom_cli("run", "--resume", "nonexist", "--runs-dir", str(tmp_path / "none"))
    assert empty.returncode == 1 and "no runs" in empty.stderr


def test_resume_after_the_recipe_was_edited_refuses_and_names_the_keys(
    tmp_path: Path, student_server: FakeOpenAIServer
) -> None:
    recipe, run_dir = _first_run(tmp_path, student_server.base_url, "--limit", "2")
    data = yaml.safe_load(recipe.read_text())
    data["nodes"]["generate"]["samples"] = 1
    data["description"] = "edited"
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    args = ["run", "--resume", run_dir.name, "--runs-dir", str(run_dir.parent), "-q", "--limit", "3"]

    refused = medloom_cli(*args)
    assert refused.returncode == 2
    assert "description" in refused.stderr and "nodes.generate.samples" in refused.stderr
    assert "--accept-config-change" in refused.stderr and "Traceback" not in refused.stderr
    assert len(json.loads((run_dir / "run.json").read_text())["sessions"]) == 1  # nothing ran

    accepted = medloom_cli(*args, "--accept-config-change")
    assert accepted.returncode == 0, accepted.stderr
    snapshot = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert snapshot["nodes"]["generate"]["samples"] == 1 and snapshot["description"] == "edited"
    assert snapshot["endpoints"][0]["base_url"] == student_server.base_url  # the first session's --endpoint
    assert read_report(run_dir)["items"] == 3
    # The accepted config is the new reference: resuming again is not refused.
    again = medloom_cli(*args)
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("damage", ["{not json", '{"run_id": 3}'])
def test_a_damaged_run_json_is_one_line_in_stats_export_and_view(mcq_run_copy: Path, damage: str) -> None:
    (mcq_run_copy / "run.json").write_text(damage)
    for command in (["stats"], ["export", "--format", "jsonl"], ["view"]):
        result = medloom_cli(*command, mcq_run_copy.name, "--runs-dir", str(mcq_run_copy.parent))
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "run.json is damaged" in lines[0] and "Traceback" not in result.stderr


@pytest.fixture
def mcq_run_copy(tmp_path: Path, student_server: FakeOpenAIServer) -> Path:
    _, run_dir = _first_run(tmp_path / "src", student_server.base_url, "--limit", "2")
    copy = tmp_path / "copy" / run_dir.name
    shutil.copytree(run_dir, copy)
    return copy


def _spec(url: str) -> dict[str, object]:
    data = yaml.safe_load(RECIPE.read_text())
    data["dataset"]["path"] = str(REPO / "configs" / "data" / "demo_mcq.jsonl")
    data["dataset"]["limit"] = 2
    data["endpoints"] = [{"name": "fake", "base_url": url}]
    return dict(data)


def test_a_crash_leaves_its_reason_in_medloom_log(
    tmp_path: Path, student_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Engine, *args: object, **kwargs: object) -> None:
        raise RuntimeError("the engine broke down")

    monkeypatch.setattr(Engine, "run", broken)
    with pytest.raises(RuntimeError, match="broke down"):
        medloom.run(_spec(student_server.base_url), runs_dir=tmp_path)
    run_dir = only_run(tmp_path)
    log = (run_dir / "medloom.log").read_text()
    assert "RuntimeError: the engine broke down" in log and "Traceback" in log
    assert json.loads((run_dir / "run.json").read_text())["sessions"][-1]["status"] == "crashed"


async def test_medloom_run_works_inside_a_running_event_loop(
    tmp_path: Path, student_server: FakeOpenAIServer
) -> None:
    asyncio.get_running_loop()  # as in Jupyter or an async app
    result = medloom.run(_spec(student_server.base_url), runs_dir=tmp_path / "sync")
    assert result.report.items == 2 and len(result.dataset) == result.report.rows


async def test_await_medloom_arun(tmp_path: Path, student_server: FakeOpenAIServer) -> None:
    result = await medloom.arun(_spec(student_server.base_url), runs_dir=tmp_path)
    assert result.report.items == 2
    assert result.run_dir.parent == tmp_path


def test_a_server_that_fails_to_start_leaves_its_reason_in_medloom_log(tmp_path: Path) -> None:
    @contextlib.asynccontextmanager
    async def failing_server(spec: object) -> AsyncIterator[list[str]]:
        raise RuntimeError("vLLM exited with code 1 before it was ready")
        yield []  # pragma: no cover

    spec = _spec("http://unused.invalid/v1")
    del spec["endpoints"]
    with pytest.raises(RuntimeError, match="before it was ready"):
        medloom.run(spec, runs_dir=tmp_path, embedded=failing_server)
    log = (only_run(tmp_path) / "medloom.log").read_text()
    assert "RuntimeError: vLLM exited with code 1 before it was ready" in log


def test_a_disk_too_full_for_the_session_header_stops_before_any_call(
    tmp_path: Path, student_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(self: TrajectoryWriter, line: str, flush: bool) -> bool:
        self.error = OSError(errno.ENOSPC, "No space left on device", str(self.path))
        if self.on_error is not None:
            self.on_error(self.error)
        return False

    monkeypatch.setattr(TrajectoryWriter, "_append", no_space)
    with pytest.raises(RunStorageError, match="no space left"):
        medloom.run(_spec(student_server.base_url), runs_dir=tmp_path)
    assert student_server.request_count == 0
    meta = json.loads((only_run(tmp_path) / "run.json").read_text())
    assert meta["sessions"][-1]["status"] == "interrupted"
