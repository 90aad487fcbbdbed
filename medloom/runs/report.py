"""The run report, computed from the trajectory file alone (so a resumed run reports the same)."""

from __future__ import annotations

import json
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import Field

from medloom.core.errors import RunError
from medloom.core.events import EmbeddingCall, ItemFinished, LLMCall, NodeStats, Note, RowSkipped
from medloom.core.notes import note_schema
from medloom.core.usage import Price, UsageTally
from medloom.runs.rundir import RunDir
from medloom.runs.store import iter_events
from medloom.verifiers.measured import recipe_verifiers, solver_summary


class NodeReport(NodeStats):
    pass_rate: float | None = None


class Report(UsageTally):
    """A run's outcome: item counts, pass rates per node, and (as a tally) every LLM call of the run."""

    run_id: str
    recipe: str
    items: int = 0
    kept: int = 0
    rejected: int = 0
    failed: int = 0
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


def _verified(run: RunDir, report: Report) -> tuple[list[dict[str, Any]], list[str]]:
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


def _percentiles(values: array[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))], 4)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(ordered[-1], 4)}


def build_report(run: RunDir, prices: dict[str, Price] | None = None) -> Report:
    """Aggregate the trajectory file: the last ``item_end`` of each item, every LLM call."""
    meta = run.read_meta()
    report = Report(run_id=meta.run_id, recipe=meta.recipe, sessions=len(meta.sessions))
    prices = prices or {}
    finals: dict[str, int] = {}  # item id → offset of its last item_end (events are re-read below)
    skipped: dict[int, RowSkipped] = {}
    latencies: array[float] = array("d")
    listed: dict[str, dict[tuple[str, str | None], dict[str, Any]]] = {}
    for offset, event in iter_events(
        run.trajectories, {"item_end", "llm_call", "embedding_call", "row_skipped", "note"}
    ):
        if isinstance(event, Note):
            kinds = report.notes.setdefault(event.node or "?", {})
            kinds[event.kind] = kinds.get(event.kind, 0) + 1
            facets = report.note_facets.setdefault(event.node or "?", {}).setdefault(event.kind, {})
            for facet, count in note_facets(event).items():
                facets[facet] = facets.get(facet, 0) + count
            schema = note_schema(event.kind)
            if schema is not None and schema.listing is not None:
                records = listed.setdefault(event.kind, {})
                record = {"item_id": event.item_id, "trace_id": event.trace_id, **event.data}
                records[(event.item_id, event.trace_id)] = record
        elif isinstance(event, ItemFinished):
            finals[event.item_id] = offset
        elif isinstance(event, RowSkipped):
            skipped[event.index] = event
        elif isinstance(event, LLMCall):
            model = event.request.model
            report.models.setdefault(model, UsageTally()).add(event.response, prices.get(model))
            if event.response is not None and not event.response.cache_hit:
                latencies.append(event.response.latency_s)
        elif isinstance(event, EmbeddingCall):
            report.models.setdefault(event.model, UsageTally()).add(event.response, prices.get(event.model))
    rejections: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    last = set(finals.values())
    for offset, item in iter_events(run.trajectories, {"item_end"}):
        if offset not in last:
            continue
        assert isinstance(item, ItemFinished)
        report.items += 1
        if item.status == "kept":
            report.kept += 1
            report.rows += len(item.rows)
        elif item.status == "rejected":
            report.rejected += 1
            rejections[f"{item.node}: {item.reason_code or _first_reason(item.reason)}"] += 1
        else:
            report.failed += 1
            failures[f"{item.node}: {_first_reason(item.reason)}"] += 1
        for node, stats in item.stats.items():
            report.nodes.setdefault(node, NodeReport()).merge(stats)
    for stats in report.nodes.values():
        judged = stats.passed + stats.failed
        stats.pass_rate = round(stats.passed / judged, 4) if judged else None
    decided = report.kept + report.rejected
    report.pass_rate = round(report.kept / decided, 4) if decided else None
    report.skipped_rows = len(skipped)
    report.skipped = [
        {"index": s.index, "reason": s.reason} for s in sorted(skipped.values(), key=lambda s: s.index)
    ][:1000]
    for usage in report.models.values():
        report.merge(usage)
    report.cost = round(report.cost, 6)
    report.latency_s = _percentiles(latencies)
    report.wall_time_s = round(sum((s.ended or s.started) - s.started for s in meta.sessions), 3)
    if report.wall_time_s > 0:
        report.items_per_s = round(report.items / report.wall_time_s, 3)
        report.output_tokens_per_s = round(report.completion_tokens / report.wall_time_s, 2)
    report.listings = {kind: list(records.values())[:1000] for kind, records in listed.items()}
    report.rejection_reasons = rejections.most_common(20)
    report.failure_reasons = failures.most_common(20)
    report.verifiers, report.solvers = _verified(run, report)
    return report


def note_facets(note: Note) -> dict[str, int]:
    """What a note counts towards in the report, as its op declares (nothing for unknown kinds)."""
    schema = note_schema(note.kind)
    return schema.facets(note.data) if schema is not None else {}


def _first_reason(reason: str | None) -> str:
    text = (reason or "unknown").split(" | ")[0]
    return text if len(text) <= 160 else text[:160] + "…"


def write_report(run: RunDir, report: Report) -> Path:
    tmp = run.report_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report.model_dump(mode="json"), indent=2))
    tmp.replace(run.report_path)
    return run.report_path
