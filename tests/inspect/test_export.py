"""`medloom export`: rows in every format, with a dataset card; --push-to-hub plumbing and errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pytest

from medloom.core.errors import RunError
from medloom.runs.export import export_run
from medloom.runs.rundir import RunDir
from tests.helpers import medloom_cli


def _kept_ids(run_dir: Path) -> set[str]:
    return {json.loads(line)["item_id"] for line in (run_dir / "data.jsonl").read_text().splitlines() if line}


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "hf"])
def test_export_cli_writes_rows_and_card(mcq_run: Path, tmp_path: Path, fmt: str) -> None:
    if fmt == "jsonl":  # by run id, into the default place inside the run directory
        run = tmp_path / mcq_run.name
        shutil.copytree(mcq_run, run)
        result = medloom_cli("export", run.name, "--runs-dir", str(tmp_path), "--format", fmt)
        out = run / "export" / "jsonl"
    else:
        out = tmp_path / fmt
        result = medloom_cli("export", str(mcq_run), "--format", fmt, "--out", str(out))
    assert result.returncode == 0, result.stderr
    expected = _kept_ids(mcq_run)
    if fmt == "parquet":
        ds = datasets.Dataset.from_parquet(str(out / "data.parquet"), cache_dir=str(tmp_path / "c"))
    elif fmt == "jsonl":
        ds = datasets.Dataset.from_json(str(out / "data.jsonl"), cache_dir=str(tmp_path / "c"))
    else:
        ds = datasets.load_from_disk(str(out))  # the directory given, not a subdirectory
    assert isinstance(ds, datasets.Dataset)
    assert set(ds["item_id"]) == expected and len(ds) == len(expected)
    assert f"exported {len(expected)} rows" in result.stdout
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: other")
    data_files = {
        "parquet": "data_files: data.parquet",
        "jsonl": "data_files: data.jsonl",
        "hf": "data_files: data-*.arrow",
    }
    assert data_files[fmt] in card


def test_card_names_recipe_models_sampling_verifiers_counts_and_licences(
    mcq_run: Path, tmp_path: Path
) -> None:
    out, rows = export_run(RunDir(mcq_run), "parquet", tmp_path / "x")
    card = (out / "README.md").read_text()
    report = json.loads((mcq_run / "report.json").read_text())
    assert rows == report["rows"]
    assert f"# mcq_refine: run {mcq_run.name}" in card
    counts = f"| {report['items']} | {report['kept']} | {report['rejected']} | {report['failed']} |"
    assert counts in card
    assert "| gen | completion | fake-model |" in card  # alias, mode, served model
    assert "temperatures [0.7], 1 sample(s) each, max_tokens 192" in card  # sampling
    assert "check `mcq_answer`" in card and "LLM judge `gen`" in card  # verifiers
    assert "verify round 0:" in card  # pass rate per round
    assert f"{report['rejected']} × refine: still failing" in card
    assert "licence: the project's own, Apache-2.0" in card  # from configs/data/README.md


def test_push_to_hub_passes_repo_rows_card_and_token(
    mcq_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    pushed: list[tuple[int, str, str, str | None]] = []

    def pusher(ds: datasets.Dataset, repo: str, card: str, token: str | None) -> None:
        pushed.append((len(ds), repo, card, token))

    out, rows = export_run(RunDir(mcq_run), "hf", tmp_path / "hf", push_to_hub="me/mcq", pusher=pusher)
    assert len(pushed) == 1
    n, repo, card, token = pushed[0]
    assert (n, repo, token) == (rows, "me/mcq", "hf_test_token")
    assert card == (out / "README.md").read_text()


def test_push_failure_is_a_clear_error(mcq_run: Path, tmp_path: Path) -> None:
    def pusher(ds: datasets.Dataset, repo: str, card: str, token: str | None) -> None:
        raise ConnectionError("no route to the Hub")

    with pytest.raises(RunError, match=r"'me/mcq' failed .*no route to the Hub.*export is still in"):
        export_run(RunDir(mcq_run), "jsonl", tmp_path / "j", push_to_hub="me/mcq", pusher=pusher)
    assert (tmp_path / "j" / "data.jsonl").exists()


@pytest.mark.slow
def test_push_to_hub_cli_fails_clearly_without_the_hub(mcq_run: Path, tmp_path: Path) -> None:
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_x", "HF_HUB_DISABLE_TELEMETRY": "1"}
    result = medloom_cli(
        "export",
        str(mcq_run),
        "--format",
        "jsonl",
        "--out",
        str(tmp_path / "p"),
        "--push-to-hub",
        "me/mcq",
        env=env,
    )
    assert result.returncode == 1
    assert "the Hub dataset 'me/mcq' failed" in result.stderr.replace("\n", " ")
    assert "Traceback" not in result.stderr
    assert (tmp_path / "p" / "data.jsonl").exists()


def test_export_rejects_a_bad_repo_id_and_a_bad_format(mcq_run: Path, tmp_path: Path) -> None:
    bad_repo = medloom_cli("export", str(mcq_run), "--out", str(tmp_path / "a"), "--push-to-hub", "noslash")
    assert bad_repo.returncode == 1 and "OWNER/NAME" in bad_repo.stderr
    bad_fmt = medloom_cli("export", str(mcq_run), "--format", "csv")
    assert bad_fmt.returncode == 2 and "csv" in bad_fmt.stderr


def test_run_readme_is_the_full_card(mcq_run: Path) -> None:
    card = (mcq_run / "README.md").read_text()
    assert "## Sources and licences" in card and "## Models and sampling" in card


def test_card_notes_the_licence_of_a_knowledge_graph_source(mcq_run: Path) -> None:
    import yaml

    from medloom.runs.card import dataset_card
    from medloom.runs.fold import compute_stats
    from tests.helpers import REPO

    config = yaml.safe_load((REPO / "configs" / "kg_multihop.yaml").read_text())
    card = dataset_card(RunDir(mcq_run), compute_stats(RunDir(mcq_run)), config)
    assert "items generated by the source op `kg_chains`" in card
    assert "knowledge graph `demo`" in card and "CC0 1.0 Universal" in card and "NOTICE.md" in card
