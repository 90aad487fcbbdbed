"""Stream input rows from JSONL, CSV, Parquet, a saved `datasets` dataset or the Hub."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medloom.core.errors import DataError

Format = Literal["auto", "jsonl", "csv", "parquet", "disk", "hub"]


class FieldMap(BaseModel):
    """Which input column holds each item field. ``options`` may name one column holding a
    dict/list/JSON string, or list several columns (one per option, letters A, B, ... in order)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    question: str = "question"
    options: str | list[str] | None = "options"
    answer: str | None = "answer"


class DatasetSpec(BaseModel):
    """Where the items come from."""

    model_config = ConfigDict(extra="forbid")

    path: str
    format: Format = "auto"
    split: str = "train"
    """For `disk` (a DatasetDict) and `hub` sources."""
    config_name: str | None = None
    fields: FieldMap = Field(default_factory=FieldMap)
    limit: int | None = Field(default=None, ge=1)


class BadRow(Exception):
    """A row that cannot become an item; carries the reason shown to the user."""


def resolve_format(spec: DatasetSpec, path: Path) -> Format:
    if spec.format != "auto":
        return spec.format
    if path.is_dir():
        return "disk"
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if not path.exists() and "/" in spec.path and not spec.path.startswith((".", "/")):
        return "hub"
    raise DataError(
        f"cannot tell the format of '{spec.path}' (expected .jsonl, .csv, .parquet, a "
        "`datasets` directory or a Hub name); set dataset.format"
    )


def iter_rows(
    spec: DatasetSpec, base_dir: Path | None = None
) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    """(index, row) pairs in file order; a row that cannot be read comes as a BadRow."""
    path = Path(spec.path)
    if not path.is_absolute() and base_dir is not None and not path.exists():
        candidate = base_dir / path
        if candidate.exists():
            path = candidate
    fmt = resolve_format(spec, path)
    if fmt != "hub" and not path.exists():
        raise DataError(f"dataset '{spec.path}' does not exist; check dataset.path")
    source: Iterator[tuple[int, dict[str, Any] | BadRow]]
    if fmt == "jsonl":
        source = _jsonl(path)
    elif fmt == "csv":
        source = _csv(path)
    elif fmt == "parquet":
        source = _parquet(path)
    elif fmt == "disk":
        source = _disk(path, spec.split)
    else:
        source = _hub(spec)
    for index, row in source:
        if spec.limit is not None and index >= spec.limit:
            break
        yield index, row


def count_rows(spec: DatasetSpec, base_dir: Path | None = None) -> int | None:
    """How many rows there are (capped by ``limit``), when that is cheap to know."""
    path = Path(spec.path)
    if not path.is_absolute() and base_dir is not None and not path.exists():
        path = base_dir / path
    try:
        fmt = resolve_format(spec, path)
    except DataError:
        return None
    total: int | None = None
    if fmt == "jsonl" and path.is_file():
        with path.open("rb") as fh:
            total = sum(1 for line in fh if line.strip())
    elif fmt == "csv" and path.is_file():
        with path.open(newline="", encoding="utf-8", errors="surrogateescape") as fh:
            total = max(0, sum(1 for _ in csv.reader(fh)) - 1)
    elif fmt == "parquet" and path.is_file():
        import pyarrow.parquet as pq

        total = pq.ParquetFile(path).metadata.num_rows
    if total is not None and spec.limit is not None:
        total = min(total, spec.limit)
    return total


def _not_utf8(text: str) -> int | None:
    """Where undecodable bytes (kept as surrogates by ``surrogateescape``) start, if any."""
    for i, ch in enumerate(text):
        if "\udc80" <= ch <= "\udcff":
            return i
    return None


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    index = 0
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if line_no == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # tolerate a byte-order mark
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield index, BadRow(f"line {line_no}: not UTF-8 text (byte {exc.start + 1})")
                index += 1
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield (
                    index,
                    BadRow(f"line {line_no}: invalid JSON ({exc.msg} at column {exc.colno})"),
                )
            else:
                if isinstance(row, dict):
                    yield index, row
                else:
                    yield (
                        index,
                        BadRow(f"line {line_no}: expected a JSON object, got {type(row).__name__}"),
                    )
            index += 1


def _csv(path: Path) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    # -sig: spreadsheets often write a BOM; surrogateescape: a row with bad bytes is reported.
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        for index, row in enumerate(reader):
            bad = [k for k, v in row.items() if isinstance(v, str) and _not_utf8(v) is not None]
            if bad or any(isinstance(k, str) and _not_utf8(k) is not None for k in row):
                yield index, BadRow(f"line {reader.line_num}: not UTF-8 text")
                continue
            if None in row:
                yield index, BadRow(f"line {reader.line_num}: more values than header columns")
                continue
            missing = [k for k, v in row.items() if v is None]
            if missing:
                yield index, BadRow(f"line {reader.line_num}: fewer values than header columns")
                continue
            yield index, dict(row)


def _parquet(path: Path) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    import pyarrow.parquet as pq

    index = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            yield index, row
            index += 1


def _disk(path: Path, split: str) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise DataError(f"'{path}' is not a dataset saved with save_to_disk: {exc}") from exc
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"'{path}' has splits {list(loaded)}, not '{split}'; set dataset.split")
        loaded = loaded[split]
    for index, row in enumerate(loaded):
        yield index, dict(row)


def _hub(spec: DatasetSpec) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    import datasets

    try:
        stream = datasets.load_dataset(spec.path, spec.config_name, split=spec.split, streaming=True)
    except Exception as exc:
        raise DataError(f"cannot load Hub dataset '{spec.path}' (needs network access): {exc}") from exc
    for index, row in enumerate(stream):
        yield index, dict(row)
