"""Write the kept rows as a `datasets` dataset (save_to_disk), Parquet and JSONL (the card: runs/card.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from medloom.core.events import ItemFinished
from medloom.core.rows import ColumnType, row_columns
from medloom.runs.rundir import RunDir
from medloom.runs.store import final_outcomes, read_event_at


def _feature(kind: ColumnType) -> Any:
    if isinstance(kind, list):
        return datasets.List(_feature(kind[0]))
    if isinstance(kind, dict):
        return {name: _feature(sub) for name, sub in kind.items()}
    return datasets.Value(kind)


def column_features(columns: list[str] | dict[str, str]) -> datasets.Features:
    """The ``datasets`` features of the output rows (``medloom.core.rows``) plus the extra columns."""
    return datasets.Features({name: _feature(kind) for name, kind in row_columns(columns).items()})


def kept_rows(path: str, offsets: list[int], stamp: str) -> Iterator[dict[str, Any]]:
    del stamp  # only part of the cache fingerprint
    for offset in offsets:
        event = read_event_at(Path(path), offset)
        assert isinstance(event, ItemFinished)
        yield from event.rows


def write_outputs(run: RunDir, columns: list[str] | dict[str, str] | None = None) -> datasets.Dataset:
    """Rebuild the outputs from the trajectories: each item's last outcome, no duplicates.

    ``columns`` names the recipe's extra output columns (``output.columns``)."""
    features = column_features(columns or [])
    finals = final_outcomes(run.trajectories)
    offsets = sorted(off for off, status in finals.values() if status == "kept")
    stat = run.trajectories.stat() if run.trajectories.exists() else None
    stamp = f"{stat.st_size}-{stat.st_mtime_ns}" if stat else "empty"
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(dir=run.path, prefix=".build-") as cache:
        if offsets:
            ds = datasets.Dataset.from_generator(
                kept_rows,
                gen_kwargs={"path": str(run.trajectories), "offsets": offsets, "stamp": stamp},
                features=features,
                cache_dir=cache,
            )
        else:
            ds = datasets.Dataset.from_dict({k: [] for k in features}, features=features)
        if run.dataset_dir.exists():
            shutil.rmtree(run.dataset_dir)
        ds.save_to_disk(str(run.dataset_dir), num_shards=1 if len(ds) == 0 else None)
        ds.to_parquet(str(run.parquet_path))
        ds.to_json(str(run.jsonl_path), lines=True, force_ascii=False)
    return datasets.load_from_disk(str(run.dataset_dir))
