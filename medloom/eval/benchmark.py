"""The benchmark an evaluation runs on: an MCQ dataset and how its columns map to items."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medloom.core.errors import ConfigError, DataError
from medloom.core.records import Item
from medloom.data.items import iter_items
from medloom.data.readers import BadRow, DatasetSpec, FieldMap, iter_rows, resolve_format

_ID_COLUMNS = ("id", "realidx", "qid", "question_id")
_ANSWER_COLUMNS = ("answer_idx", "answer", "label", "gold")


def _first_row(spec: DatasetSpec) -> dict[str, Any]:
    path = spec.path
    for _, row in iter_rows(spec.model_copy(update={"limit": 1})):
        if isinstance(row, BadRow):
            raise ConfigError(f"benchmark {path}: first row is unreadable ({row})", key="--dataset")
        return row
    raise ConfigError(f"benchmark {path} is empty", key="--dataset")


def guess_fields(spec: DatasetSpec, overrides: dict[str, str] | None = None) -> FieldMap:
    """The field mapping for a benchmark, guessed from its first row.

    MedAgentsBench files (``question``, ``options`` letter → text, ``answer_idx``, ``realidx``)
    and medloom's own MCQ files (``id``, ``question``, ``options``, ``answer``) need no
    overrides; ``overrides`` (item field → column) settles anything else.
    """
    overrides = dict(overrides or {})
    unknown = set(overrides) - {"id", "question", "options", "answer"}
    if unknown:
        raise ConfigError(
            f"unknown item field(s) {sorted(unknown)} in --field; use id, question, options or answer",
            key="--field",
        )
    path = spec.path
    row = _first_row(spec)
    fields: dict[str, Any] = {
        "id": next((c for c in _ID_COLUMNS if c in row), None),
        "question": "question",
        "options": "options",
        "answer": None,
    }
    # answer_idx (a letter) beats answer (often the option text) when both exist.
    fields["answer"] = next((c for c in _ANSWER_COLUMNS if c in row), None)
    fields.update(overrides)
    for key in ("question", "options"):
        if fields[key] not in row:
            raise ConfigError(
                f"benchmark {path} has no column '{fields[key]}' for the {key} "
                f"(columns: {', '.join(row)}); map it with --field {key}=COLUMN",
                key="--field",
            )
    if fields["answer"] is None or fields["answer"] not in row:
        raise ConfigError(
            f"benchmark {path} has no gold answer column (columns: {', '.join(row)}); "
            "map it with --field answer=COLUMN",
            key="--field",
        )
    if isinstance(fields["options"], str) and "," in fields["options"]:
        fields["options"] = [c.strip() for c in fields["options"].split(",")]
    return FieldMap.model_validate(fields)


def benchmark_spec(
    path: str | Path,
    fields: dict[str, str] | None = None,
    limit: int | None = None,
    *,
    split: str | None = None,
    config_name: str | None = None,
) -> DatasetSpec:
    """The ``dataset:`` section every solver is run with: a local file or saved dataset (its path
    resolved), or a Hub name (``org/name``, read as ``medloom run`` reads ``dataset.path``, with
    ``split`` and ``config_name``)."""
    resolved = Path(path).expanduser()
    options: dict[str, Any] = {"limit": limit, "config_name": config_name}
    if split is not None:
        options["split"] = split
    if resolved.exists():
        spec = DatasetSpec(path=str(resolved.resolve()), **options)
    else:
        spec = DatasetSpec(path=str(path), **options)
        try:
            hub = resolve_format(spec, resolved) == "hub"
        except DataError:
            hub = False
        if not hub:
            raise ConfigError(
                f"benchmark '{path}' does not exist; check --dataset (a file, a saved dataset "
                "directory, or a Hub name like org/name)",
                key="--dataset",
            )
    return spec.model_copy(update={"fields": guess_fields(spec, fields)})


def gold_items(spec: DatasetSpec) -> tuple[list[Item], list[tuple[int, str]]]:
    """The benchmark's items in order (with gold letters) and the rows that could not be read."""
    items: list[Item] = []
    bad: list[tuple[int, str]] = []
    for index, entry in iter_items(spec):
        if isinstance(entry, Item):
            items.append(entry)
        else:
            bad.append((index, str(entry)))
    return items, bad
