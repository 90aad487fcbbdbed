"""The run report (built by one pass over the trajectory file, ``medloom.runs.fold``, so a resumed
run reports the same) and how notes count in it."""

from __future__ import annotations

import json
from array import array
from pathlib import Path
from typing import Any

from pydantic import Field

from medloom.core.budget import BudgetCaps, CapReached, Spend
from medloom.core.errors import RunError
from medloom.core.events import NodeStats, Note, Outcomes
from medloom.core.notes import note_schema
from medloom.core.usage import UsageTally
from medloom.runs.rundir import RunDir
from medloom.verifiers.measured import recipe_verifiers, solver_summary


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
    spend: Spend = Field(default_factory=Spend)
    """What the run paid, as its budget caps count it (cache hits are free)."""
    budget: BudgetCaps | None = None
    """The caps of the last session (None without caps)."""
    stopped_by: CapReached | None = None
    """The budget cap that stopped the last session: resume with a higher cap to go on."""
    rejection_reasons: list[tuple[str, int]] = Field(default_factory=list)
    failure_reasons: list[tuple[str, int]] = Field(default_factory=list)
    skipped: list[dict[str, Any]] = Field(default_factory=list)
    listings: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    """Notes of the kinds whose op asks for them to be listed (``NoteSchema.listing``), one record
    per item and trace: ``{"contaminated": [{"item_id", "trace_id", "eval_set", ...}]}``."""
    notes: dict[str, dict[str, int]] = Field(default_factory=dict)
    """How many notes each step node wrote, by kind (``{"vote": {"vote_round": 5, ...}}``)."""
    note_facets: dict[str, dict[str, dict[str, int]]] = Field(default_factory=dict)
    """What notes said, counted per node and kind as their op declares (``NoteSchema.facets``):
    resampling matched or not and its tries, vote outcomes, removals by eval set, …"""
    verifiers: list[dict[str, Any]] = Field(default_factory=list)
    """Per verifier of the recipe: what it checks and its measured recall, precision and false
    rejection rate (``bench/verifiers.py``'s shipped figures; None where unmeasured)."""
    solvers: list[str] = Field(default_factory=list)
    """What the label check's solvers were worth: how often each beat a guesser."""


def verified_figures(run: RunDir, report: Report) -> tuple[list[dict[str, Any]], list[str]]:
    """The recipe's verifiers with their shipped figures, and the label check's solvers against chance."""
    try:
        config = run.read_config()
    except (OSError, RunError):
        config = {}
    figures = [v.model_dump() for v in recipe_verifiers(config)]
    return figures, [
        text
        for node, kinds in report.note_facets.items()
        for text in solver_summary(node, kinds.get("label_check", {}))
    ]


def percentiles(values: array[float]) -> dict[str, float]:
    """p50, p90, p99 and max of ``values`` (empty for none)."""
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))], 4)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(ordered[-1], 4)}


def note_facets(note: Note) -> dict[str, int]:
    """What a note counts towards in the report, as its op declares (nothing for unknown kinds)."""
    schema = note_schema(note.kind)
    return schema.facets(note.data) if schema is not None else {}


def write_report(run: RunDir, report: Report) -> Path:
    tmp = run.report_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report.model_dump(mode="json"), indent=2))
    tmp.replace(run.report_path)
    return run.report_path
