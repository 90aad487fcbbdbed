"""Run statistics for `medloom stats`: the report plus per node × model usage, latency and throughput.

Everything is computed from the trajectory file by one pass (``medloom.runs.fold.compute_stats``),
so it works on a live run as well as a finished one.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from medloom.core.events import Outcomes
from medloom.core.usage import Price, UsageTally
from medloom.runs.report import Report
from medloom.runs.rundir import RunDir

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


class ThroughputBucket(Outcomes):
    """Items that ended, and tokens generated, in one time window (seconds since the first event)."""

    start_s: float
    end_s: float
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


def stats_json(stats: RunStats) -> dict[str, Any]:
    """The machine-readable form printed by ``medloom stats --json``."""
    data = stats.model_dump(mode="json")
    for bucket, raw in zip(stats.throughput, data["throughput"], strict=True):
        raw["tokens_per_s"] = round(bucket.tokens_per_s, 3)
    return data
