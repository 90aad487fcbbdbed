"""The command line, through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from medloom.testing.fake import FakeOpenAIServer
from tests.helpers import RECIPE, REPO, medloom_cli, only_run, read_report


def _recipe_copy(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load(RECIPE.read_text())
    data["dataset"]["path"] = str(REPO / "configs" / "data" / "demo_mcq.jsonl")
    data.update(changes)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_help_lists_the_commands() -> None:
    result = medloom_cli("--help")
    assert result.returncode == 0
    for command in ("run", "validate", "recipes", "serve"):
        assert command in result.stdout
    run_help = medloom_cli("run", "--help")
    for option in ("--endpoint", "--limit", "--set", "--resume"):
        assert option in run_help.stdout


def test_validate_ok_prints_the_execution_order() -> None:
    result = medloom_cli("validate", str(RECIPE))
    assert result.returncode == 0, result.stderr
    assert "generate" in result.stdout and "verify ⇄ refine" in result.stdout


def test_validate_names_file_and_key_of_a_typo(tmp_path: Path) -> None:
    data = yaml.safe_load(RECIPE.read_text())
    data["nodes"]["generate"]["sampels"] = 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = medloom_cli("validate", str(bad))
    assert result.returncode == 2
    assert str(bad) in result.stderr.replace("\n", "")
    assert "nodes.generate.sampels" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_reports_an_unknown_node_in_an_edge(tmp_path: Path) -> None:
    data = yaml.safe_load(RECIPE.read_text())
    data["edges"].append("judge -> sellect")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = medloom_cli("validate", str(bad))
    assert result.returncode == 2
    assert "sellect" in result.stderr and "edges.5.to" in result.stderr


def test_validate_with_a_set_override_error() -> None:
    result = medloom_cli("validate", str(RECIPE), "--set", "run.concurrency=many")
    assert result.returncode == 2
    assert "run.concurrency" in result.stderr


def test_recipes_lists_the_builtin_recipe() -> None:
    result = medloom_cli("recipes")
    assert result.returncode == 0
    assert "mcq_refine" in result.stdout


def test_run_without_endpoint_or_config_says_what_to_do(tmp_path: Path) -> None:
    result = medloom_cli("run", "--runs-dir", str(tmp_path))
    assert result.returncode == 2
    assert "CONFIG" in result.stderr


def test_run_against_fake_endpoint_writes_the_run_directory(
    tmp_path: Path, student_server: FakeOpenAIServer
) -> None:
    result = medloom_cli(
        "run", str(RECIPE), "--endpoint", student_server.base_url, "--runs-dir", str(tmp_path), "--limit", "6"
    )
    assert result.returncode == 0, result.stderr
    run_dir = only_run(tmp_path)
    for name in (
        "config.yaml",
        "run.json",
        "trajectories.jsonl",
        "report.json",
        "data.parquet",
        "data.jsonl",
        "README.md",
    ):
        assert (run_dir / name).exists(), name
    assert (run_dir / "dataset" / "dataset_info.json").exists()
    report = read_report(run_dir)
    assert report["items"] == 6
    assert report["kept"] + report["rejected"] + report["failed"] == 6
    assert set(report["nodes"]) >= {"generate", "verify", "select"}
    assert "kept" in result.stdout and "trajectories" in result.stdout
    card = (run_dir / "README.md").read_text()
    assert "mcq_refine" in card and "| items | kept |" in card


def test_bad_rows_are_reported_with_their_index_and_skipped(
    tmp_path: Path, student_server: FakeOpenAIServer
) -> None:
    rows = [
        {
            "id": "a",
            "question": "Which organ makes insulin?",
            "options": {"A": "Liver", "B": "Pancreas"},
            "answer": "B",
        },
        {"id": "b", "question": "", "options": {"A": "x", "B": "y"}, "answer": "A"},
        "not json at all",
        {
            "id": "d",
            "question": "Which vitamin is made in the skin with sunlight?",
            "options": {"A": "D", "B": "C"},
            "answer": "Z",
        },
        {
            "id": "e",
            "question": "Which cell makes antibodies?",
            "options": {"A": "Plasma cell", "B": "Neutrophil"},
            "answer": "A",
        },
    ]
    data_file = tmp_path / "items.jsonl"
    data_file.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    recipe = _recipe_copy(tmp_path)
    result = medloom_cli(
        "run",
        str(recipe),
        "--endpoint",
        student_server.base_url,
        "--runs-dir",
        str(tmp_path / "runs"),
        "--set",
        f"dataset.path={data_file}",
    )
    assert result.returncode == 0, result.stderr
    report = read_report(only_run(tmp_path / "runs"))
    assert report["items"] == 2
    assert report["skipped_rows"] == 3
    skipped = {s["index"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {1, 2, 3}
    assert "question" in skipped[1]
    assert "line 3" in skipped[2] and "JSON" in skipped[2]
    assert "'Z'" in skipped[3]
    assert "row 1" in result.stdout


def test_dead_endpoint_fails_items_with_reasons_not_the_run(tmp_path: Path) -> None:
    recipe = _recipe_copy(
        tmp_path, llm={"retry": {"max_attempts": 2, "initial_backoff_s": 0.01, "max_backoff_s": 0.02}}
    )
    result = medloom_cli(
        "run",
        str(recipe),
        "--endpoint",
        "http://127.0.0.1:9/v1",
        "--set",
        "models.gen.model=m",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--limit",
        "3",
    )
    assert result.returncode == 3, result.stderr  # the run ended, but items failed
    report = read_report(only_run(tmp_path / "runs"))
    assert report["failed"] == 3 and report["kept"] == 0
    assert "connection error" in report["failure_reasons"][0][0]
