"""Write the kept rows as a `datasets` dataset (save_to_disk), Parquet and JSONL (the card: runs/card.py).

The files are written with pyarrow (``medloom.runs.arrow_files``); ``datasets`` is imported only
where a value's type needs it, or to load the dataset for the Python API."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from medloom.core.events import ItemFinished
from medloom.core.rows import INFERRED, ColumnType, row_columns
from medloom.runs.arrow_files import UnsupportedType, arrow_type, feature_of, write_row_files
from medloom.runs.rundir import RunDir
from medloom.runs.store import events_at

if TYPE_CHECKING:
    import datasets

log = logging.getLogger("medloom")


def _feature(kind: ColumnType) -> Any:
    import datasets

    if isinstance(kind, list):
        return datasets.List(_feature(kind[0]))
    if isinstance(kind, dict):
        return {name: _feature(sub) for name, sub in kind.items()}
    return datasets.Value(kind)


def column_schema(
    columns: list[str] | dict[str, str], rows: Iterable[dict[str, Any]] = ()
) -> tuple[pa.Schema, list[str]]:
    """The arrow schema of the output rows (``medloom.core.rows``) plus the extra columns, and the
    inferred columns whose values disagree on a type (written as JSON text).

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
    fields = [
        pa.field(name, (types[name] or pa.string()) if kind == INFERRED else arrow_type(kind))
        for name, kind in kinds.items()
    ]
    return pa.schema(fields), as_text


def column_features(
    columns: list[str] | dict[str, str], rows: Iterable[dict[str, Any]] = ()
) -> tuple[datasets.Features, list[str]]:
    """:func:`column_schema` as ``datasets`` features."""
    import datasets

    kinds = row_columns(columns)
    schema, as_text = column_schema(columns, rows)
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
    import datasets

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


def write_output_files(
    run: RunDir, offsets: list[int], columns: list[str] | dict[str, str] | None = None
) -> int:
    """Write the kept rows (see :func:`kept_dataset`) into the run as a dataset, Parquet and JSONL;
    returns the number of rows. pyarrow writes them; a value whose type has no ``datasets`` feature
    here is written by ``datasets`` itself."""
    path, at = str(run.trajectories), tuple(offsets)
    try:
        schema, as_text = column_schema(columns or [], kept_rows(path, at, "") if offsets else ())
        for field in schema:
            feature_of(field.type)  # an unsupported type: before any file is touched
        _remove_outputs(run)
        rows = kept_rows(path, at, "", tuple(as_text)) if offsets else iter(())
        return write_row_files(rows, schema, run.dataset_dir, run.parquet_path, run.jsonl_path)
    except (UnsupportedType, pa.ArrowException, TypeError, ValueError) as exc:
        log.info("run %s: outputs written by datasets (%s)", run.run_id, exc)
    return len(_write_with_datasets(run, offsets, columns or []))


def write_outputs(
    run: RunDir, offsets: list[int], columns: list[str] | dict[str, str] | None = None
) -> datasets.Dataset:
    """:func:`write_output_files`, and the dataset loaded from the run."""
    import datasets

    write_output_files(run, offsets, columns)
    return datasets.load_from_disk(str(run.dataset_dir))


def _remove_outputs(run: RunDir) -> None:
    if run.dataset_dir.exists():
        shutil.rmtree(run.dataset_dir)
    run.parquet_path.unlink(missing_ok=True)
    run.jsonl_path.unlink(missing_ok=True)


def _write_with_datasets(
    run: RunDir, offsets: list[int], columns: list[str] | dict[str, str]
) -> datasets.Dataset:
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory(dir=run.path, prefix=".build-") as cache:
        ds = kept_dataset(run, offsets, columns, Path(cache))
        _remove_outputs(run)
        ds.save_to_disk(str(run.dataset_dir), num_shards=1 if len(ds) == 0 else None)
        ds.to_parquet(str(run.parquet_path))
        ds.to_json(str(run.jsonl_path), lines=True, force_ascii=False)
    return ds
