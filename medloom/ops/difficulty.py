"""Difficulty tiers (ReasonMed): how many of an item's first-pass traces failed verification.

``op: difficulty_tier`` sits after the verify/refine loop on the *passed* branch. It knows how
many traces the named generator makes per item (models × temperatures × samples); the traces
that reach it unrevised passed at the first try, so every other generated trace failed first.
The share of first-pass failures sets the tier: below ``medium_from`` → easy, below
``hard_from`` → medium, else hard (ReasonMed's 9 CoTs: 0–4 errors easy, 5–7 medium, 8–9 hard).
The item gets ``data.difficulty``, ``data.first_pass_failed`` and ``data.attempts``; each
trace gets ``meta.difficulty``. Traces pass through unchanged otherwise.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from medloom.agents.context import AgentContext
from medloom.core.records import Item, Trace
from medloom.nodes.generator import GeneratorNode
from medloom.nodes.protocol import NodeOutput
from medloom.nodes.step import BaseOp, OpBuild, OpParams, register_op


class DifficultyParams(OpParams):
    generator: str
    """The generator node whose traces are counted."""
    medium_from: float = Field(default=0.5, ge=0, le=1)
    hard_from: float = Field(default=0.85, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> DifficultyParams:
        if self.hard_from < self.medium_from:
            raise ValueError("hard_from must not be below medium_from")
        return self


def tier(failed: int, attempts: int, medium_from: float, hard_from: float) -> str:
    share = failed / attempts if attempts else 1.0
    if share < medium_from:
        return "easy"
    return "medium" if share < hard_from else "hard"


@register_op("difficulty_tier")
class DifficultyTier(BaseOp):
    """Tag the item easy / medium / hard by its first-pass failure share."""

    Params = DifficultyParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        gen = build.graph.nodes.get(self.params.generator)
        if not isinstance(gen, GeneratorNode):
            generators = [n for n, s in build.graph.nodes.items() if isinstance(s, GeneratorNode)]
            raise build.fail(
                f"'{self.params.generator}' is not a generator node (generators: {', '.join(generators)})",
                "params.generator",
            )
        self.attempts = len(gen.models) * len(gen.temperatures or [gen.sampling.temperature]) * gen.samples

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        first_pass = sum(1 for t in traces if t.round == 0 and t.node == self.params.generator)
        failed = max(0, self.attempts - first_pass)
        p: DifficultyParams = self.params
        level = tier(failed, self.attempts, p.medium_from, p.hard_from)
        data = {**item.data, "difficulty": level, "first_pass_failed": failed, "attempts": self.attempts}
        tagged = [t.model_copy(update={"meta": {**t.meta, "difficulty": level}}) for t in traces]
        return NodeOutput(traces=tagged, item=item.model_copy(update={"data": data}))
