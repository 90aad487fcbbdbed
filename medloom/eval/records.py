"""What an evaluation produces: one prediction per (solver, item) and a summary per solver."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Prediction(BaseModel):
    """One solver's answer to one benchmark item."""

    solver: str
    item_id: str
    index: int
    gold: str | None
    predicted: str | None
    """The option letter the solver chose (None: no parsable answer, rejected or failed)."""
    correct: bool
    status: str
    """How the item ended in the solver's run: kept, rejected, failed or missing."""
    reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    wall_s: float = 0.0
    """The item's own time through the graph (items run concurrently)."""
    calls: int = 0
    detail: dict[str, str] = Field(default_factory=dict)
    """Extra output columns of the kept row (e.g. medprompt's vote counts)."""


class SolverResult(BaseModel):
    """One solver (a graph config) over the benchmark."""

    solver: str
    config: str
    run_dir: str
    n: int
    correct: int
    answered: int
    failed: int
    accuracy: float
    ci_low: float
    ci_high: float
    prompt_tokens: int
    completion_tokens: int
    cost: float
    wall_time_s: float
    """Wall time of the whole run (items run concurrently)."""

    @property
    def tokens_per_item(self) -> float:
        return (self.prompt_tokens + self.completion_tokens) / self.n if self.n else 0.0

    @property
    def cost_per_item(self) -> float:
        return self.cost / self.n if self.n else 0.0

    @property
    def seconds_per_item(self) -> float:
        return self.wall_time_s / self.n if self.n else 0.0


class EvalResult(BaseModel):
    benchmark: str
    out_dir: str
    confidence: float = 0.95
    skipped_rows: list[tuple[int, str]] = Field(default_factory=list)
    solvers: list[SolverResult] = Field(default_factory=list)
    predictions: list[Prediction] = Field(default_factory=list)
