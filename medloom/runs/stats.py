"""Run statistics for `medloom stats`: the report plus per node × model usage, latency and throughput.

Everything is computed from the trajectory file, so it works on a live run as well as a finished one.
"""

from __future__ import annotations

from array import array
from typing import Any

from pydantic import BaseModel, Field

from medloom.core.events import ItemFinished, ItemStatus, LLMCall
from medloom.core.usage import Price, UsageTally
from medloom.runs.report import Report, _percentiles, build_report
from medloom.runs.rundir import RunDir
from medloom.runs.store import iter_events

NICE_BUCKETS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)


class UsageRow(UsageTally):
    """LLM calls, tokens and cost of one model at one node."""

    node: str
    model: str


class RoundRow(BaseModel):
    """A verifier's pass/fail counts in one refinement round."""

    node: str
    round: int
    passed: int
    failed: int
    pass_rate: float | None


class ThroughputBucket(BaseModel):
    """Items that ended, and tokens generated, in one time window (seconds since the first event)."""

    start_s: float
    end_s: float
    items: int = 0
    kept: int = 0
    rejected: int = 0
    failed: int = 0
    completion_tokens: int = 0

    @property
    def tokens_per_s(self) -> float:
        span = self.end_s - self.start_s
        return self.completion_tokens / span if span > 0 else 0.0


class RunStats(BaseModel):
    report: Report
    usage: list[UsageRow] = Field(default_factory=list)
    rounds: list[RoundRow] = Field(default_factory=list)
    latency_by_node: dict[str, dict[str, float]] = Field(default_factory=dict)
    bucket_s: float = 0.0
    throughput: list[ThroughputBucket] = Field(default_factory=list)
    live: bool = False
    """A session of the run is still running."""
    interrupted: bool = False
    """The last session is marked running but its process is gone: resume it with ``--resume``."""


def run_prices(run: RunDir) -> dict[str, Price]:
    """The ``llm.prices`` of the run's config snapshot (empty when it has none)."""
    try:
        prices = (run.read_config().get("llm") or {}).get("prices") or {}
    except (OSError, ValueError):
        return {}
    return {model: Price.model_validate(p) for model, p in prices.items()}


def bucket_size(span_s: float, max_buckets: int = 12) -> float:
    """A round window length that splits ``span_s`` into at most ``max_buckets`` windows."""
    for size in NICE_BUCKETS_S:
        if span_s / size <= max_buckets:
            return float(size)
    return float(NICE_BUCKETS_S[-1])


def compute_stats(
    run: RunDir, prices: dict[str, Price] | None = None, report: Report | None = None
) -> RunStats:
    """Statistics of ``run``; pass ``report`` when it was just built, to save a pass over the file."""
    prices = run_prices(run) if prices is None else prices
    report = report or build_report(run, prices)
    usage: dict[tuple[str, str], UsageRow] = {}
    latencies: dict[str, array[float]] = {}
    token_times: list[tuple[float, int]] = []
    ends: dict[str, tuple[float, ItemStatus]] = {}
    first_ts: float | None = None
    for _, event in iter_events(run.trajectories, {"llm_call", "item_end", "item_started"}):
        first_ts = event.ts if first_ts is None else min(first_ts, event.ts)
        if isinstance(event, ItemFinished):
            ends[event.item_id] = (event.ts, event.status)
        elif isinstance(event, LLMCall):
            node = event.node or event.agent
            row = usage.setdefault(
                (node, event.request.model), UsageRow(node=node, model=event.request.model)
            )
            resp = event.response
            row.add(resp, prices.get(event.request.model))
            if resp is None:
                continue
            if not resp.cache_hit:
                latencies.setdefault(node, array("d")).append(resp.latency_s)
                token_times.append((event.ts, resp.usage.completion_tokens))
    for row in usage.values():
        row.cost = round(row.cost, 6)
    stats = RunStats(
        report=report,
        usage=sorted(usage.values(), key=lambda r: (r.node, r.model)),
        rounds=_rounds(report),
        latency_by_node={
            node: _percentiles(vals) | {"n": float(len(vals))} for node, vals in latencies.items()
        },
    )
    state = run.state()
    stats.live, stats.interrupted = state == "live", state == "interrupted"
    if first_ts is not None and ends:
        _fill_throughput(stats, first_ts, ends, token_times)
    return stats


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
    ends: dict[str, tuple[float, ItemStatus]],
    token_times: list[tuple[float, int]],
) -> None:
    last = max(max(ts for ts, _ in ends.values()), max((ts for ts, _ in token_times), default=first_ts))
    size = bucket_size(last - first_ts)
    count = int((last - first_ts) // size) + 1
    buckets = [ThroughputBucket(start_s=i * size, end_s=(i + 1) * size) for i in range(count)]
    for ts, status in ends.values():
        bucket = buckets[min(count - 1, int((ts - first_ts) // size))]
        bucket.items += 1
        setattr(bucket, status, getattr(bucket, status) + 1)
    for ts, tokens in token_times:
        buckets[min(count - 1, max(0, int((ts - first_ts) // size)))].completion_tokens += tokens
    stats.bucket_s = size
    stats.throughput = buckets


def stats_json(stats: RunStats) -> dict[str, Any]:
    """The machine-readable form printed by ``medloom stats --json``."""
    data = stats.model_dump(mode="json")
    for bucket, raw in zip(stats.throughput, data["throughput"], strict=True):
        raw["tokens_per_s"] = round(bucket.tokens_per_s, 3)
    return data
