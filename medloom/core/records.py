"""The shared vocabulary as typed records: items, traces, steps, verdicts, revisions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Item(BaseModel):
    """One seed record. ``data`` keeps every original field; mapped fields are lifted out."""

    id: str
    index: int
    question: str = ""
    options: dict[str, str] | None = None
    answer: str | None = None
    """Gold answer: an option letter for MCQ items, free text otherwise."""
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def gold_text(self) -> str | None:
        if self.answer is not None and self.options and self.answer in self.options:
            return self.options[self.answer]
        return self.answer


class Step(BaseModel):
    index: int
    """1-based, as written in the trace ("Step 2: ...")."""
    text: str


class CriterionScore(BaseModel):
    """One rubric criterion as a grader judged it (``medloom.verifiers.rubric``)."""

    id: str
    category: str
    text: str
    weight: float
    """Points the criterion is worth; negative for a pitfall (met = points lost)."""
    met: bool | None = None
    """None: undecided (the grader's reply could not be read); never counted as met."""
    points: float = 0.0
    """``weight`` when met, else 0."""
    reason: str = ""


class Verdict(BaseModel):
    """A judgement on a trace, by a deterministic check or an LLM."""

    passed: bool
    score: float | None = None
    step_flags: dict[int, str] = Field(default_factory=dict)
    """Step index → why that step is wrong."""
    reasons: list[str] = Field(default_factory=list)
    verifier: str
    node: str | None = None
    failed_by: list[str] = Field(default_factory=list)
    """For a composite verdict: the verifiers that failed."""
    undecided: bool = False
    """The verifier could not decide (e.g. a judge's output it could not read); never a pass."""
    detail: dict[str, Any] | None = None
    """A judge's typed result as data (e.g. ``MedvalAssessment.model_validate(verdict.detail)``)."""
    criteria: list[CriterionScore] = Field(default_factory=list)
    """For a rubric verdict: each criterion's weight, judgement and points (``score`` is the total)."""

    @property
    def failing(self) -> list[str]:
        """Names of what failed (the verifier itself, or a composite's failing parts)."""
        if self.passed:
            return []
        return self.failed_by or [self.verifier]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


class Revision(BaseModel):
    """One refinement of a trace."""

    round: int
    node: str
    flagged_steps: list[int]
    reasons: list[str]
    before: str
    after: str


class Trace(BaseModel):
    """One candidate for an item: text, parsed steps and answer, verdicts, revision history."""

    id: str
    item_id: str
    node: str
    model: str | None = None
    text: str
    steps: list[Step] = Field(default_factory=list)
    answer: str | None = None
    parse_error: str | None = None
    finish_reason: str | None = None
    temperature: float | None = None
    sample_index: int = 0
    round: int = 0
    verdicts: list[Verdict] = Field(default_factory=list)
    revisions: list[Revision] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def last_verdict(self) -> Verdict | None:
        return self.verdicts[-1] if self.verdicts else None

    @property
    def score(self) -> float | None:
        scores = [v.score for v in self.verdicts if v.score is not None]
        return scores[-1] if scores else None

    def steps_text(self) -> str:
        return "\n".join(f"Step {s.index}: {s.text}" for s in self.steps)
