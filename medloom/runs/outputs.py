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
from medloom.runs.store import events_at


def _feature(kind: ColumnType) -> Any:
    if isinstance(kind, list):
        return datasets.List(_feature(kind[0]))
    if isinstance(kind, dict):
        return {name: _feature(sub) for name, sub in kind.items()}
    return datasets.Value(kind)


def column_features(columns: list[str] | dict[str, str]) -> datasets.Features:
    """The ``datasets`` features of the output rows (``medloom.core.rows``) plus the extra columns."""
    return datasets.Features({name: _feature(kind) for name, kind in row_columns(columns).items()})


def kept_rows(path: str, offsets: tuple[int, ...], stamp: str) -> Iterator[dict[str, Any]]:
    del stamp  # only part of the cache fingerprint
    for event in events_at(Path(path), offsets):
        assert isinstance(event, ItemFinished)
        yield from event.rows


def kept_dataset(
    run: RunDir, offsets: list[int], columns: list[str] | dict[str, str], cache_dir: Path
) -> datasets.Dataset:
    """The rows of the ``item_end`` events at ``offsets`` (the kept items' last outcomes, from
    ``medloom.runs.fold``); ``columns`` are the recipe's extra output columns (``output.columns``)."""
    features = column_features(columns)
    if not offsets:
        return datasets.Dataset.from_dict({k: [] for k in features}, features=features)
    stat = run.trajectories.stat()
    return datasets.Dataset.from_generator(
        kept_rows,
        gen_kwargs={
            "path": str(run.trajectories),
            "offsets": tuple(offsets),  # a list would be split into one generator call per offset
            "stamp": f"{stat.st_size}-{stat.st_mtime_ns}",
        },
        features=features,
        cache_dir=str(cache_dir),
    )


def write_outputs(
    run: RunDir, offsets: list[int], columns: list[str] | dict[str, str] | None = None
) -> datasets.Dataset:
    """Write the kept rows (see :func:`kept_dataset`) into the run as a dataset, Parquet and JSONL."""
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(dir=run.path, prefix=".build-") as cache:
        ds = kept_dataset(run, offsets, columns or [], Path(cache))
        if run.dataset_dir.exists():
            shutil.rmtree(run.dataset_dir)
        ds.save_to_disk(str(run.dataset_dir), num_shards=1 if len(ds) == 0 else None)
        ds.to_parquet(str(run.parquet_path))
        ds.to_json(str(run.jsonl_path), lines=True, force_ascii=False)
    return datasets.load_from_disk(str(run.dataset_dir))
