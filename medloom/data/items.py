"""Turn input rows into items through a field mapping; bad rows are reported, not dropped."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medloom.core.records import Item
from medloom.core.text import extract_choice
from medloom.data.readers import BadRow, DatasetSpec, FieldMap, iter_rows


def _options(row: dict[str, Any], fields: FieldMap) -> dict[str, str] | None:
    if fields.options is None:
        return None
    if isinstance(fields.options, list):
        missing = [c for c in fields.options if c not in row]
        if missing:
            raise BadRow(f"missing option columns {missing}")
        return {string.ascii_uppercase[i]: str(row[c]) for i, c in enumerate(fields.options)}
    if fields.options not in row:
        raise BadRow(f"missing field '{fields.options}' (options)")
    value = row[fields.options]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise BadRow(f"field '{fields.options}' is not a JSON object or list") from None
    if isinstance(value, dict):
        opts = {str(k).strip(): str(v) for k, v in value.items() if v is not None}
    elif isinstance(value, list):
        opts = {string.ascii_uppercase[i]: str(v) for i, v in enumerate(value)}
    else:
        raise BadRow(f"field '{fields.options}' must be a dict or a list, got {type(value).__name__}")
    if len(opts) < 2:
        raise BadRow(f"field '{fields.options}' has fewer than two options")
    return opts


def row_to_item(index: int, row: dict[str, Any], fields: FieldMap) -> Item:
    """An item from one row; raises BadRow with the reason."""
    if fields.question not in row:
        raise BadRow(f"missing field '{fields.question}' (question)")
    question = row[fields.question]
    if not isinstance(question, str) or not question.strip():
        raise BadRow(f"field '{fields.question}' is empty or not text")
    options = _options(row, fields)
    answer: str | None = None
    if fields.answer is not None:
        if fields.answer not in row or row[fields.answer] in (None, ""):
            raise BadRow(f"missing field '{fields.answer}' (gold answer)")
        answer = str(row[fields.answer]).strip()
        if options is not None and answer not in options:
            letter = extract_choice(answer, options)
            if letter is None:
                raise BadRow(f"gold answer '{answer}' is not one of the options {list(options)}")
            answer = letter
    if fields.id is not None:
        if row.get(fields.id) in (None, ""):
            raise BadRow(f"missing field '{fields.id}' (id)")
        item_id = str(row[fields.id])
    else:
        item_id = str(index)
    return Item(id=item_id, index=index, question=question, options=options, answer=answer, data=row)


def iter_items(spec: DatasetSpec, base_dir: Path | None = None) -> Iterator[tuple[int, Item | BadRow]]:
    """Items in input order; bad rows (and duplicate ids) come as BadRow with their reason."""
    seen: dict[str, int] = {}
    for index, row in iter_rows(spec, base_dir):
        if isinstance(row, BadRow):
            yield index, row
            continue
        try:
            item = row_to_item(index, row, spec.fields)
        except BadRow as bad:
            yield index, bad
            continue
        if item.id in seen:
            yield index, BadRow(f"duplicate id '{item.id}' (first at row {seen[item.id]})")
            continue
        seen[item.id] = index
        yield index, item
