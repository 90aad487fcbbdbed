"""Output columns keep their types in data.jsonl, data.parquet and the saved dataset: ints stay ints,
mappings and lists stay nested (``ds[0]["path"]["hops"][0]["relation"]``), and only a column whose
values disagree on a type falls back to JSON text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets

from medloom.core.events import ItemFinished
from medloom.core.records import Item, Trace
from medloom.core.rows import trace_row
from medloom.runs.export import export_run
from medloom.runs.fold import fold_run
from medloom.runs.outputs import write_outputs
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
