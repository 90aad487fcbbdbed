"""The kept rows written with pyarrow alone, in the layouts ``datasets`` reads: ``save_to_disk``'s
directory (``datasets.load_from_disk``) and Parquet with its features, so that a run does not import
``datasets`` (over a second of start-up) to write its outputs.

Arrow types are described as ``datasets`` features (``Features.to_dict()`` form) for the types
output rows hold: null, bool, integers, floats, strings, lists and structs. Any other type raises
:class:`UnsupportedType`, and the caller writes with ``datasets`` instead.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from medloom.core.rows import ColumnType

SHARD = "data-00000-of-00001.arrow"
"""The one shard file of a saved dataset (``save_to_disk`` names its shards so)."""

BATCH_ROWS = 1000
"""Rows converted and written at a time: memory stays flat however many rows a run keeps."""


class UnsupportedType(ValueError):
    """An arrow type this module does not describe as ``datasets`` features."""


def arrow_type(kind: ColumnType) -> pa.DataType:
    """The arrow type of a declared column type (``medloom.core.rows``): a scalar name, ``[type]``
    or ``{field: type}``."""
    if isinstance(kind, list):
        return pa.list_(arrow_type(kind[0]))
    if isinstance(kind, dict):
        return pa.struct([pa.field(name, arrow_type(sub)) for name, sub in kind.items()])
    return pa.type_for_alias(kind)


def feature_of(kind: pa.DataType) -> dict[str, Any]:
    """``kind`` as a ``datasets`` feature, in ``Features.to_dict()`` form."""
    if pa.types.is_struct(kind):
        return {kind.field(i).name: feature_of(kind.field(i).type) for i in range(kind.num_fields)}
    if pa.types.is_list(kind):
        return {"feature": feature_of(kind.value_type), "_type": "List"}
    if pa.types.is_large_list(kind):
        return {"feature": feature_of(kind.value_type), "_type": "LargeList"}
    if pa.types.is_floating(kind):
        return {"dtype": f"float{kind.bit_width}", "_type": "Value"}
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_null(kind):
        return {"dtype": str(kind), "_type": "Value"}
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return {"dtype": "string" if pa.types.is_string(kind) else "large_string", "_type": "Value"}
    raise UnsupportedType(f"no datasets feature for the arrow type {kind}")


def with_features(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the ``huggingface`` metadata ``datasets`` reads its features from."""
    features = {field.name: feature_of(field.type) for field in schema}
    return schema.with_metadata({"huggingface": json.dumps({"info": {"features": features}})})


def _batches(rows: Iterable[dict[str, Any]], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, BATCH_ROWS)):
        yield pa.RecordBatch.from_pylist(chunk, schema=schema)


def write_row_files(
    rows: Iterable[dict[str, Any]], schema: pa.Schema, dataset_dir: Path, parquet: Path, jsonl: Path
) -> int:
    """Write ``rows`` as a saved dataset in ``dataset_dir`` (which must not exist), Parquet and
    JSONL, converting them to ``schema`` batch by batch; returns the number of rows.

    Raises ``pa.ArrowException`` (or ``TypeError``/``ValueError``) when a value does not fit its
    column's type; files written so far are then left for the caller to replace."""
    schema = with_features(schema)
    dataset_dir.mkdir(parents=True)
    count = size = 0
    with (
        pa.OSFile(str(dataset_dir / SHARD), "wb") as sink,
        pa.ipc.new_stream(sink, schema) as arrow,
        pq.ParquetWriter(str(parquet), schema) as table,
        jsonl.open("w", encoding="utf-8") as lines,
    ):
        for batch in _batches(rows, schema):
            arrow.write_batch(batch)
            table.write_batch(batch)
            for row in batch.to_pylist():
                lines.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += batch.num_rows
            size += batch.nbytes
    _write_dataset_metadata(dataset_dir, schema, count, size)
    return count


def _write_dataset_metadata(dataset_dir: Path, schema: pa.Schema, count: int, size: int) -> None:
    """``dataset_info.json`` and ``state.json`` of a one-shard ``train`` split, as ``save_to_disk``
    writes them."""
    features = {field.name: feature_of(field.type) for field in schema}
    info = {
        "citation": "",
        "description": "",
        "features": features,
        "homepage": "",
        "license": "",
        "splits": {"train": {"name": "train", "num_bytes": size, "num_examples": count}},
        "dataset_size": size,
        "size_in_bytes": size,
    }
    state: dict[str, Any] = {
        "_data_files": [{"filename": SHARD}],
        "_fingerprint": secrets.token_hex(8),
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": "train",
    }
    (dataset_dir / "dataset_info.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    (dataset_dir / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
