"""Write the kept rows as a `datasets` dataset (save_to_disk), Parquet and JSONL (the card: runs/card.py)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa

from medloom.core.events import ItemFinished
from medloom.core.rows import INFERRED, ColumnType, row_columns
from medloom.runs.rundir import RunDir
from medloom.runs.store import events_at


def _feature(kind: ColumnType) -> Any:
    if isinstance(kind, list):
        return datasets.List(_feature(kind[0]))
    if isinstance(kind, dict):
        return {name: _feature(sub) for name, sub in kind.items()}
    return datasets.Value(kind)


def column_features(
    columns: list[str] | dict[str, str], rows: Iterable[dict[str, Any]] = ()
) -> tuple[datasets.Features, list[str]]:
    """The ``datasets`` features of the output rows (``medloom.core.rows``) plus the extra columns,
    and the inferred columns whose values disagree on a type (written as JSON text).

    An inferred column takes the arrow type of its values in ``rows``: ints stay ints, mappings and
    lists become structs and lists (so ``ds[0]["path"]["hops"][0]["relation"]`` works)."""
    kinds = row_columns(columns)
    inferred = [name for name, kind in kinds.items() if kind == INFERRED]
    values: dict[str, list[Any]] = {name: [] for name in inferred}
    for row in rows:
        for name in inferred:
            values[name].append(row.get(name))
    types = {name: _arrow_type(values[name]) for name in inferred}
    as_text = [name for name, kind in types.items() if kind is None]
    schema = pa.schema([pa.field(name, kind or pa.string()) for name, kind in types.items()])
    typed = datasets.Features.from_arrow_schema(schema)
    features = {name: typed[name] if kind == INFERRED else _feature(kind) for name, kind in kinds.items()}
    return datasets.Features(features), as_text


def _arrow_type(values: list[Any]) -> pa.DataType | None:
    """The type of ``values`` (text when there are none), or None when they cannot share one."""
    try:
        kind = pa.array(values).type
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None
    if pa.types.is_null(kind):
        return pa.string()
    return None if _has_empty_struct(kind) else kind  # Parquet cannot store a struct without fields


def _has_empty_struct(kind: pa.DataType) -> bool:
    if pa.types.is_struct(kind):
        return kind.num_fields == 0 or any(
            _has_empty_struct(kind.field(i).type) for i in range(kind.num_fields)
        )
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _has_empty_struct(kind.value_type)
    return False


def kept_rows(
    path: str, offsets: tuple[int, ...], stamp: str, as_text: tuple[str, ...] = ()
) -> Iterator[dict[str, Any]]:
    """The rows of the ``item_end`` events at ``offsets``; the ``as_text`` columns as JSON text."""
    del stamp  # only part of the cache fingerprint
    for event in events_at(Path(path), offsets):
        assert isinstance(event, ItemFinished)
        for row in event.rows:
            yield (row | {k: _as_text(row.get(k)) for k in as_text}) if as_text else row


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def kept_dataset(
    run: RunDir, offsets: list[int], columns: list[str] | dict[str, str], cache_dir: Path
) -> datasets.Dataset:
    """The rows of the ``item_end`` events at ``offsets`` (the kept items' last outcomes, from
    ``medloom.runs.fold``), their column types inferred; ``columns`` are the recipe's extra output
    columns (``output.columns``)."""
    stat = run.trajectories.stat() if run.trajectories.exists() else None
    stamp = f"{stat.st_size}-{stat.st_mtime_ns}" if stat else "empty"
    path, at = str(run.trajectories), tuple(offsets)  # a list would be split into one call per offset
    features, as_text = column_features(columns, kept_rows(path, at, stamp) if offsets else ())
    if not offsets:
        return datasets.Dataset.from_dict({k: [] for k in features}, features=features)
    return datasets.Dataset.from_generator(
        kept_rows,
        gen_kwargs={"path": path, "offsets": at, "stamp": stamp, "as_text": tuple(as_text)},
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
