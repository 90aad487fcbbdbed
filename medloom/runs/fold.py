"""One typed pass over a run's trajectory: the report, the statistics, the kept rows' offsets (and so
the card) all come from it. A run's end reads the file once, plus one seek per kept item for its rows.

Each item counts by its last ``item_end`` (a retried item replaces its earlier outcome). Extra
figures plug in as :class:`FoldPart` objects that see the events they ask for and then add to the
statistics.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from medloom.core.budget import Spend
from medloom.core.calls import EmbeddingResponse, LLMResponse
from medloom.core.events import (
    EmbeddingCall,
    Event,
    ItemFinished,
    ItemStatus,
    LLMCall,
    Note,
    RowSkipped,
)
from medloom.core.notes import note_schema
from medloom.core.usage import Price, UsageTally
from medloom.runs.report import NodeReport, Report, note_facets, percentiles, verified_figures
from medloom.runs.rundir import RunDir
from medloom.runs.stats import RoundRow, RunStats, ThroughputBucket, UsageRow, bucket_size, run_prices
from medloom.runs.store import iter_events, read_event_at

FOLDED_TYPES = frozenset({"item_started", "llm_call", "embedding_call", "item_end", "row_skipped", "note"})
"""The event types the fold itself reads (traces, verdicts and revisions are skipped unparsed)."""
_TIMED = frozenset({"item_started", "llm_call", "item_end"})
"""The events whose times place the throughput windows."""


class FoldPart(Protocol):
    """Extra figures computed in the same pass (e.g. per-verifier counts for the report and card)."""

    types: frozenset[str]
    """The event types it wants to see."""

    def add(self, offset: int, event: Event) -> None: ...

    def finish(self, stats: RunStats) -> None:
        """Add what it found to the statistics (and so to the report and the card)."""
        ...


@dataclass
class Fold:
    """What one pass over the trajectory gives."""

    stats: RunStats
    kept_offsets: list[int]
    """Where the last ``item_end`` of each kept item starts, in file order (its rows are there)."""

    @property
    def report(self) -> Report:
        return self.stats.report


@dataclass
class _Both:
    """A call counts for its model (the report) and for its node × model row (the stats)."""

    model: UsageTally
    row: UsageRow

    def add(self, response: LLMResponse | EmbeddingResponse | None, price: Price | None) -> None:
        self.model.add(response, price)
        self.row.add(response, price)


@dataclass
class _Folder:
    report: Report
    prices: dict[str, Price]
    finals: dict[str, tuple[int, ItemStatus, float]] = field(default_factory=dict)
    """Item id → (offset, status, time) of its last ``item_end``."""
    rejections: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    skipped: dict[int, RowSkipped] = field(default_factory=dict)
    listed: dict[str, dict[tuple[str, str | None], dict[str, Any]]] = field(default_factory=dict)
    """Note kind → its listed records by (item, trace) (``NoteSchema.listing``)."""
    usage: dict[tuple[str, str], UsageRow] = field(default_factory=dict)
    latencies: array[float] = field(default_factory=lambda: array("d"))
    node_latencies: dict[str, array[float]] = field(default_factory=dict)
    token_times: list[tuple[float, int]] = field(default_factory=list)
    first_ts: float | None = None

    def add(self, run: RunDir, offset: int, event: Event) -> None:
        if event.type in _TIMED:
            self.first_ts = event.ts if self.first_ts is None else min(self.first_ts, event.ts)
        if isinstance(event, LLMCall):
            self._call(event)
        elif isinstance(event, EmbeddingCall):
            self._usage(event.node or event.agent, event.model).add(
                event.response, self.prices.get(event.model)
            )
        elif isinstance(event, ItemFinished):
            earlier = self.finals.get(event.item_id)
            if earlier is not None:  # retried after a resume: its earlier outcome no longer counts
                previous = read_event_at(run.trajectories, earlier[0])
                assert isinstance(previous, ItemFinished)
                self._outcome(previous, -1)
            self._outcome(event, 1)
            self.finals[event.item_id] = (offset, event.status, event.ts)
        elif isinstance(event, Note):
            self._note(event)
        elif isinstance(event, RowSkipped):
            self.skipped[event.index] = event

    def _usage(self, node: str, model: str) -> _Both:
        row = self.usage.get((node, model))
        if row is None:
            row = self.usage[node, model] = UsageRow(node=node, model=model)
        return _Both(self.report.models.setdefault(model, UsageTally()), row)

    def _call(self, event: LLMCall) -> None:
        node, model = event.node or event.agent, event.request.model
        self._usage(node, model).add(event.response, self.prices.get(model))
        response = event.response
        if response is not None and not response.cache_hit:
            self.latencies.append(response.latency_s)
            self.node_latencies.setdefault(node, array("d")).append(response.latency_s)
            self.token_times.append((event.ts, response.usage.completion_tokens))

    def _outcome(self, end: ItemFinished, sign: int) -> None:
        report = self.report
        report.count(end.status, sign)
        if end.status == "kept":
            report.rows += sign * len(end.rows)
        elif end.status == "rejected":
            self.rejections[f"{end.node}: {end.reason_code or _first_reason(end.reason)}"] += sign
        else:
            self.failures[f"{end.node}: {_first_reason(end.reason)}"] += sign
        for node, stats in end.stats.items():
            report.nodes.setdefault(node, NodeReport()).merge(stats, sign)

    def _note(self, note: Note) -> None:
        node = note.node or "?"
        kinds = self.report.notes.setdefault(node, {})
        kinds[note.kind] = kinds.get(note.kind, 0) + 1
        facets = self.report.note_facets.setdefault(node, {}).setdefault(note.kind, {})
        for facet, count in note_facets(note).items():
            facets[facet] = facets.get(facet, 0) + count
        schema = note_schema(note.kind)
        if schema is not None and schema.listing is not None:
            records = self.listed.setdefault(note.kind, {})
            records[note.item_id, note.trace_id] = {
                "item_id": note.item_id,
                "trace_id": note.trace_id,
                **note.data,
            }

    def finish(self, run: RunDir) -> Fold:
        report = self.report
        for node in report.nodes.values():
            judged = node.passed + node.failed
            node.pass_rate = round(node.passed / judged, 4) if judged else None
        decided = report.kept + report.rejected
        report.pass_rate = round(report.kept / decided, 4) if decided else None
        report.skipped_rows = len(self.skipped)
        ordered = sorted(self.skipped.values(), key=lambda s: s.index)
        report.skipped = [{"index": s.index, "reason": s.reason} for s in ordered][:1000]
        for usage in report.models.values():
            report.merge(usage)
        report.cost = round(report.cost, 6)
        report.spend = Spend.of(report)
        report.latency_s = percentiles(self.latencies)
        meta = run.read_meta()
        if meta.sessions:
            report.budget, report.stopped_by = meta.sessions[-1].budget, meta.sessions[-1].stopped_by
        report.wall_time_s = round(sum((s.ended or s.started) - s.started for s in meta.sessions), 3)
        if report.wall_time_s > 0:
            report.items_per_s = round(report.items / report.wall_time_s, 3)
            report.output_tokens_per_s = round(report.completion_tokens / report.wall_time_s, 2)
        report.listings = {kind: list(records.values())[:1000] for kind, records in self.listed.items()}
        report.rejection_reasons = [(r, n) for r, n in self.rejections.most_common(20) if n > 0]
        report.failure_reasons = [(r, n) for r, n in self.failures.most_common(20) if n > 0]
        report.verifiers, report.solvers = verified_figures(run, report)
        for row in self.usage.values():
            row.cost = round(row.cost, 6)
        stats = RunStats(
            report=report,
            usage=sorted(self.usage.values(), key=lambda r: (r.node, r.model)),
            rounds=_rounds(report),
            latency_by_node={
                node: percentiles(values) | {"n": float(len(values))}
                for node, values in self.node_latencies.items()
            },
        )
        state = run.state()
        stats.live, stats.interrupted = state == "live", state == "interrupted"
        if self.first_ts is not None and self.finals:
            _fill_throughput(stats, self.first_ts, self.finals, self.token_times)
        kept = sorted(offset for offset, status, _ in self.finals.values() if status == "kept")
        return Fold(stats=stats, kept_offsets=kept)


def fold_run(run: RunDir, prices: dict[str, Price] | None = None, parts: Sequence[FoldPart] = ()) -> Fold:
    """Report, statistics and kept-row offsets of ``run`` from one pass over its trajectory.

    ``prices`` default to the ``llm.prices`` of the run's config snapshot."""
    meta = run.read_meta()
    folder = _Folder(
        report=Report(run_id=meta.run_id, recipe=meta.recipe, sessions=len(meta.sessions)),
        prices=run_prices(run) if prices is None else prices,
    )
    types = set(FOLDED_TYPES).union(*(part.types for part in parts))
    for offset, event in iter_events(run.trajectories, types):
        if event.type in FOLDED_TYPES:
            folder.add(run, offset, event)
        for part in parts:
            if event.type in part.types:
                part.add(offset, event)
    fold = folder.finish(run)
    for part in parts:
        part.finish(fold.stats)
    return fold


def compute_stats(run: RunDir, prices: dict[str, Price] | None = None) -> RunStats:
    """The statistics (and report) of ``run``, live or finished."""
    return fold_run(run, prices).stats


def _first_reason(reason: str | None) -> str:
    text = (reason or "unknown").split(" | ")[0]
    return text if len(text) <= 160 else text[:160] + "…"


def _rounds(report: Report) -> list[RoundRow]:
    rows = []
    for node, stats in report.nodes.items():
        for rnd, counts in sorted(stats.rounds.items(), key=lambda kv: int(kv[0])):
            passed, failed = counts.get("passed", 0), counts.get("failed", 0)
            judged = passed + failed
            rate = round(passed / judged, 4) if judged else None
            rows.append(RoundRow(node=node, round=int(rnd), passed=passed, failed=failed, pass_rate=rate))
    return rows


def _fill_throughput(
    stats: RunStats,
    first_ts: float,
    finals: dict[str, tuple[int, ItemStatus, float]],
    token_times: list[tuple[float, int]],
) -> None:
    ends = [(ts, status) for _, status, ts in finals.values()]
    last = max(max(ts for ts, _ in ends), max((ts for ts, _ in token_times), default=first_ts))
    size = bucket_size(last - first_ts)
    count = int((last - first_ts) // size) + 1
    buckets = [ThroughputBucket(start_s=i * size, end_s=(i + 1) * size) for i in range(count)]
    for ts, status in ends:
        buckets[min(count - 1, int((ts - first_ts) // size))].count(status)
    for ts, tokens in token_times:
        buckets[min(count - 1, max(0, int((ts - first_ts) // size)))].completion_tokens += tokens
    stats.bucket_s = size
    stats.throughput = buckets
