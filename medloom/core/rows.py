"""Output rows: one per kept trace, with a fixed schema and a link to the trajectory."""

from __future__ import annotations

import json
from typing import Any

from medloom.core.records import Item, Trace

ColumnType = str | list[Any] | dict[str, Any]
"""A column's type: a scalar name ("string", "float64", "int32", "bool"), ``[type]`` for a list,
``{field: type}`` for a struct, or ``INFERRED``. ``medloom.runs.outputs`` turns it into ``datasets``
features."""

INFERRED = "inferred"
"""A column typed from its values when the outputs are written: ints stay ints, lists and mappings
become nested lists and structs (text only where the values disagree on a type)."""

ROW_COLUMNS: dict[str, ColumnType] = {
    "item_id": "string",
    "question": "string",
    "options": [{"key": "string", "text": "string"}],
    "answer": "string",
    "answer_text": "string",
    "reasoning": "string",
    "steps": ["string"],
    "predicted": "string",
    "score": "float64",
    "verdicts": [
        {"verifier": "string", "node": "string", "passed": "bool", "score": "float64", "reason": "string"}
    ],
    "rounds": "int32",
    "model": "string",
    "temperature": "float64",
    "trace_id": "string",
    "run_id": "string",
    "trajectory": "string",
    "source_fields": INFERRED,
}
"""The columns of every output row (extra ``output.columns`` are typed from their values)."""


def row_columns(columns: list[str] | dict[str, str]) -> dict[str, ColumnType]:
    """The row columns plus an inferred column for each extra column."""
    extra = {name: INFERRED for name in columns if name not in ROW_COLUMNS}
    return {**ROW_COLUMNS, **extra}


def _plain(value: Any) -> Any:
    """``value`` as JSON data (tuples become lists, other objects their text), its structure kept."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def _column_value(item: Item, trace: Trace, source: str) -> Any:
    scope, key = source.split(".", 1)
    return _plain((trace.meta if scope == "meta" else item.data).get(key))


def trace_row(
    item: Item,
    trace: Trace,
    run_id: str,
    passthrough: list[str],
    columns: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The output row of a kept trace. ``trajectory`` names the events behind it."""
    extra = {name: _column_value(item, trace, src) for name, src in (columns or {}).items()}
    return extra | {
        "item_id": item.id,
        "question": item.question,
        "options": [{"key": k, "text": v} for k, v in (item.options or {}).items()],
        "answer": item.answer,
        "answer_text": item.gold_text,
        "reasoning": trace.text,
        "steps": [s.text for s in trace.steps],
        "predicted": trace.answer,
        "score": trace.score,
        "verdicts": [
            {
                "verifier": v.verifier,
                "node": v.node,
                "passed": v.passed,
                "score": v.score,
                "reason": v.reason,
            }
            for v in trace.verdicts
        ],
        "rounds": trace.round,
        "model": trace.model,
        "temperature": trace.temperature,
        "trace_id": trace.id,
        "run_id": run_id,
        "trajectory": f"trajectories.jsonl#item_id={item.id}",
        "source_fields": _plain({k: item.data.get(k) for k in passthrough if k in item.data}) or None,
    }
