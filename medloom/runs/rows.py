"""Output rows: one per kept trace, with a fixed schema and a link to the trajectory."""

from __future__ import annotations

import json
from typing import Any

import datasets

from medloom.records import Item, Trace

ROW_FEATURES = datasets.Features(
    {
        "item_id": datasets.Value("string"),
        "question": datasets.Value("string"),
        "options": datasets.List({"key": datasets.Value("string"), "text": datasets.Value("string")}),
        "answer": datasets.Value("string"),
        "answer_text": datasets.Value("string"),
        "reasoning": datasets.Value("string"),
        "steps": datasets.List(datasets.Value("string")),
        "predicted": datasets.Value("string"),
        "score": datasets.Value("float64"),
        "verdicts": datasets.List(
            {
                "verifier": datasets.Value("string"),
                "node": datasets.Value("string"),
                "passed": datasets.Value("bool"),
                "score": datasets.Value("float64"),
                "reason": datasets.Value("string"),
            }
        ),
        "rounds": datasets.Value("int32"),
        "model": datasets.Value("string"),
        "temperature": datasets.Value("float64"),
        "trace_id": datasets.Value("string"),
        "run_id": datasets.Value("string"),
        "trajectory": datasets.Value("string"),
        "source_fields": datasets.Value("string"),
    }
)


def column_features(columns: list[str] | dict[str, str]) -> datasets.Features:
    """The row features plus a text column for each extra column."""
    extra = {name: datasets.Value("string") for name in columns if name not in ROW_FEATURES}
    return datasets.Features({**ROW_FEATURES, **extra})


def _column_value(item: Item, trace: Trace, source: str) -> str | None:
    scope, key = source.split(".", 1)
    value = (trace.meta if scope == "meta" else item.data).get(key)
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


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
        "source_fields": json.dumps(
            {k: item.data.get(k) for k in passthrough if k in item.data}, ensure_ascii=False, default=str
        ),
    }
