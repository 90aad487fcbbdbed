"""Output columns keep their types in data.jsonl, data.parquet and the saved dataset: ints stay ints,
mappings and lists stay nested (``ds[0]["path"]["hops"][0]["relation"]``), and only a column whose
values disagree on a type falls back to JSON text."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import datasets

from medloom.core.events import ItemFinished
from medloom.core.records import Item, Trace
from medloom.core.rows import trace_row
from medloom.runs.arrow_files import UnsupportedType
from medloom.runs.export import export_run
from medloom.runs.fold import fold_run
from medloom.runs.outputs import _write_with_datasets, write_output_files, write_outputs
from medloom.runs.rundir import RunDir
from medloom.runs.store import TrajectoryWriter

COLUMNS = {
    "path": "data.path",
    "hops": "data.hops",
    "solver_correct": "data.solver_correct",
    "votes": "meta.votes",
    "mixed": "data.mixed",
    "note": "data.note",
}


def _path(i: int) -> dict[str, Any]:
    hops = [{"source": f"s{i}", "relation": "treats", "target": f"t{i}"}]
    return {"ids": [f"s{i}", f"t{i}"], "hops": hops * (i + 1)}


def _run(tmp_path: Path) -> RunDir:
    config = {"name": "types", "output": {"columns": COLUMNS, "passthrough": ["topic"]}}
    run = RunDir.create(tmp_path / "runs", "types", config, None)
    writer = TrajectoryWriter(run.trajectories)
    for i in range(3):
        data = {
            "path": _path(i),
            "hops": i + 1,
            "solver_correct": 4 - i,
            "mixed": [1, "two", {"three": 3}][i],  # no common type: JSON text
            "note": None,
            "topic": "cardiology",
        }
        item = Item(id=f"q{i}", index=i, question="Q?", options={"A": "a", "B": "b"}, answer="A", data=data)
        trace = Trace(id=f"q{i}/t", item_id=item.id, node="gen", text="Step 1: a.\nAnswer: A", answer="A")
        trace.meta["votes"] = {"A": 3} if i else {"A": 2, "B": 1}
        row = trace_row(item, trace, run.run_id, ["topic"], COLUMNS)
        writer.write(ItemFinished(item_id=item.id, status="kept", rows=[row]))
    writer.close()
    return run


def _check(row: dict[str, Any], index: int) -> None:
    assert row["path"]["hops"][0]["relation"] == "treats"
    assert len(row["path"]["hops"]) == index + 1 and row["path"]["ids"] == [f"s{index}", f"t{index}"]
    assert row["hops"] == index + 1 and row["solver_correct"] == 4 - index
    assert row["source_fields"] == {"topic": "cardiology"}
    assert row["votes"]["A"] == (2 if index == 0 else 3)  # a struct over every key seen
    assert row["note"] is None
    assert row["mixed"] == ["1", "two", '{"three": 3}'][index]  # text as it was before


def test_columns_keep_ints_and_nested_values_in_every_output(tmp_path: Path) -> None:
    run = _run(tmp_path)
    ds = write_outputs(run, fold_run(run).kept_offsets, COLUMNS)
    assert ds.features["hops"] == datasets.Value("int64")
    assert ds.features["path"]["hops"] == datasets.List(
        {
            "source": datasets.Value("string"),
            "relation": datasets.Value("string"),
            "target": datasets.Value("string"),
        }
    )
    jsonl = [json.loads(line) for line in run.jsonl_path.read_text().splitlines()]
    parquet = datasets.Dataset.from_parquet(str(run.parquet_path), cache_dir=str(tmp_path / "c"))
    saved = datasets.load_from_disk(str(run.dataset_dir))
    for rows in (list(ds), jsonl, list(parquet), list(saved)):
        assert len(rows) == 3
        for i, row in enumerate(sorted(rows, key=lambda r: r["item_id"])):
            _check(row, i)
    out, n = export_run(run, "hf", tmp_path / "export")
    exported = datasets.load_from_disk(str(out))
    assert n == 3 and exported.features == ds.features
    assert exported[0]["path"]["hops"][0]["relation"] == "treats"


def test_a_run_with_no_passthrough_fields_writes_parquet(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "runs", "types", {"name": "types"}, None)
    writer = TrajectoryWriter(run.trajectories)
    item = Item(id="q0", index=0, question="Q?", answer="A")
    row = trace_row(
        item, Trace(id="q0/t", item_id="q0", node="gen", text="x", answer="A"), run.run_id, [], {}
    )
    writer.write(ItemFinished(item_id="q0", status="kept", rows=[row]))
    writer.close()
    ds = write_outputs(run, fold_run(run).kept_offsets)
    assert ds[0]["source_fields"] is None and run.parquet_path.stat().st_size > 0


def test_pyarrow_outputs_load_as_the_ones_datasets_writes(tmp_path: Path, caplog: Any) -> None:
    """The outputs are written with pyarrow (no ``datasets`` import in a run); what ``datasets``
    loads from them equals what it loads from its own ``save_to_disk`` / ``to_parquet`` /
    ``to_json`` of the same rows: features, rows, the split and the row count."""
    ours = _run(tmp_path / "ours")
    theirs = _run(tmp_path / "theirs")
    with caplog.at_level(logging.INFO, logger="medloom"):
        assert write_output_files(ours, fold_run(ours).kept_offsets, COLUMNS) == 3
    assert "written by datasets" not in caplog.text  # the pyarrow path, not the fallback
    _write_with_datasets(theirs, fold_run(theirs).kept_offsets, COLUMNS)
    a, b = datasets.load_from_disk(str(ours.dataset_dir)), datasets.load_from_disk(str(theirs.dataset_dir))
    assert a.features == b.features and a.split == b.split and a.num_rows == b.num_rows == 3
    assert a.to_list() == [row | {"run_id": a[0]["run_id"]} for row in b.to_list()]
    cache = str(tmp_path / "c")
    pa_ours = datasets.Dataset.from_parquet(str(ours.parquet_path), cache_dir=cache)
    pa_theirs = datasets.Dataset.from_parquet(str(theirs.parquet_path), cache_dir=cache)
    assert pa_ours.features == pa_theirs.features == b.features
    jsonl = [json.loads(line) for line in ours.jsonl_path.read_text().splitlines()]
    assert jsonl == a.to_list()


def test_a_type_without_a_pyarrow_feature_is_written_by_datasets(
    tmp_path: Path, caplog: Any, monkeypatch: Any
) -> None:
    def unsupported(kind: Any) -> dict[str, Any]:
        raise UnsupportedType(f"no datasets feature for the arrow type {kind}")

    monkeypatch.setattr("medloom.runs.outputs.feature_of", unsupported)
    run = _run(tmp_path)
    with caplog.at_level(logging.INFO, logger="medloom"):
        ds = write_outputs(run, fold_run(run).kept_offsets, COLUMNS)
    assert "written by datasets (no datasets feature" in caplog.text
    for i, row in enumerate(sorted(ds, key=lambda r: r["item_id"])):
        _check(row, i)
    assert len(run.jsonl_path.read_text().splitlines()) == 3


def test_a_run_does_not_import_datasets() -> None:
    """``datasets`` takes over a second to import; the run path writes its outputs without it."""
    code = "import sys, medloom.cli.main, medloom.runs.runner; print('datasets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
