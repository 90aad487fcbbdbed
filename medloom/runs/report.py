"""The run report (built by one pass over the trajectory file, ``medloom.runs.fold``, so a resumed
run reports the same) and how known notes count in it."""

from __future__ import annotations

import json
from array import array
from pathlib import Path
from typing import Any

from pydantic import Field

from medloom.core.events import NodeStats, Note, Outcomes
from medloom.core.usage import UsageTally
from medloom.runs.rundir import RunDir


class NodeReport(NodeStats):
    pass_rate: float | None = None


class Report(Outcomes, UsageTally):
    """A run's outcome: item counts, pass rates per node, and (as a tally) every LLM call of the run."""

    run_id: str
    recipe: str
    skipped_rows: int = 0
    rows: int = 0
    pass_rate: float | None = None
    """kept / (kept + rejected)."""
    nodes: dict[str, NodeReport] = Field(default_factory=dict)
    models: dict[str, UsageTally] = Field(default_factory=dict)
    latency_s: dict[str, float] = Field(default_factory=dict)
    wall_time_s: float = 0.0
    items_per_s: float = 0.0
    output_tokens_per_s: float = 0.0
    sessions: int = 0
    rejection_reasons: list[tuple[str, int]] = Field(default_factory=list)
    failure_reasons: list[tuple[str, int]] = Field(default_factory=list)
    skipped: list[dict[str, Any]] = Field(default_factory=list)
    contamination: list[dict[str, Any]] = Field(default_factory=list)
    """What decontamination removed: item, trace, evaluation set, overlap, closest evaluation item."""
    notes: dict[str, dict[str, int]] = Field(default_factory=dict)
    """How many notes each step node wrote, by kind (``{"vote": {"vote_round": 5, ...}}``)."""
    note_facets: dict[str, dict[str, dict[str, int]]] = Field(default_factory=dict)
    """What known notes said, counted per node and kind: resampling matched or not and its tries,
    vote outcomes, revised vote rounds, removals by eval set, padded expert fields."""


def percentiles(values: array[float]) -> dict[str, float]:
    """p50, p90, p99 and max of ``values`` (empty for none)."""
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))], 4)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(ordered[-1], 4)}


def note_facets(note: Note) -> dict[str, int]:
    """What a note of a known kind counts towards in the report (nothing for other kinds)."""
    data = note.data
    if note.kind == "resample":
        matched = bool(data.get("matched"))
        return {"matched": int(matched), "no match": int(not matched), "tries": int(data.get("tries") or 0)}
    if note.kind == "vote_outcome":
        return {str(data.get("outcome")): 1}
    if note.kind == "vote_round":
        return {"revised": 1} if data.get("revised") else {}
    if note.kind == "contaminated":
        return {str(data.get("eval_set")): 1}
    if note.kind == "domains":
        return {"padded fields": len(data.get("padded") or [])} if data.get("padded") else {}
    return {}


def facets_text(facets: dict[str, int]) -> str:
    """``matched 1, no match 1, tries 5`` (for the stats table and the card)."""
    return ", ".join(f"{name} {count}" for name, count in facets.items() if count)


def write_report(run: RunDir, report: Report) -> Path:
    tmp = run.report_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report.model_dump(mode="json"), indent=2))
    tmp.replace(run.report_path)
    return run.report_path
