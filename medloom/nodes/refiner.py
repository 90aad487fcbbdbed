"""The ``refiner`` node: rewrites the steps a verdict flagged; its ``max_rounds`` bounds loops."""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import Field

from medloom.agents.agent import Sampling
from medloom.agents.roles import Refiner
from medloom.core.records import Item, Trace
from medloom.nodes.kind import (
    TRACE_VARIABLES,
    NodeBuild,
    NodeKind,
    NodeSpec,
    TemplateUse,
    node_kind,
    register_kind,
)
from medloom.nodes.protocol import Drop, NodeContext, NodeOutput


class RefinerNode(NodeSpec):
    type: Literal["refiner"]
    model: str
    template: str = "mcq_refine"
    max_rounds: int = Field(default=2, ge=1)
    share_reasons: bool = True
    """Feed the refiner the reasons other attempts at the same item failed (ReasonMed)."""
    sampling: Sampling = Field(default_factory=Sampling)


class RefinerRun:
    """Refines each failing trace until ``max_rounds``; drops the ones still failing then."""

    def __init__(self, refiner: Refiner, spec: RefinerNode):
        self.refiner = refiner
        self.spec = spec

    async def run(self, item: Item, traces: list[Trace], ctx: NodeContext) -> NodeOutput:
        rounds = self.spec.max_rounds
        todo: list[Trace] = []
        drops: list[Drop] = []
        for trace in traces:
            last = trace.last_verdict
            if trace.round >= rounds:
                why = last.reason if last else "no verdict"
                failing = ", ".join(last.failing) if last else "?"
                drops.append(
                    Drop(
                        trace,
                        f"still failing after {rounds} refinement rounds: {why}",
                        f"still failing {failing} after {rounds} refinement rounds",
                    )
                )
            elif last is None:
                drops.append(Drop(trace, "nothing to refine: the trace has no verdict", "no verdict"))
            else:
                todo.append(trace)
        refined = await asyncio.gather(*(self._one(item, t, ctx) for t in todo))
        return NodeOutput(traces=list(refined), drops=drops)

    async def _one(self, item: Item, trace: Trace, ctx: NodeContext) -> Trace:
        assert trace.last_verdict is not None
        memory = ctx.memory
        root = memory.lineage.get(trace.id, trace.id)
        others: list[str] = []
        if self.spec.share_reasons:
            # Other attempts only: not this trace, nor the earlier rounds it was refined from.
            others = [
                r
                for tid, rs in memory.failed_reasons.items()
                if memory.lineage.get(tid, tid) != root
                for r in rs
            ]
            others = list(dict.fromkeys(others))[:5]
        new = await self.refiner.refine(item, trace, trace.last_verdict, ctx, others)
        memory.lineage[new.id] = root
        return new


@register_kind
class RefinerKind(NodeKind[RefinerNode]):
    tag = "refiner"
    Spec = RefinerNode
    bounds_loops = True

    def templates(self, spec: RefinerNode) -> list[TemplateUse]:
        extra = TRACE_VARIABLES | {"flags", "reasons", "other_reasons"}
        return [TemplateUse(spec.template, spec.model, "template", extra)]

    def placement(self, name: str, spec: RefinerNode, predecessors: list[NodeSpec]) -> str | None:
        if any(node_kind(p.type).gives_verdicts for p in predecessors):
            return None
        return f"refiner '{name}' must follow a verifier (it repairs what a verdict flagged)"

    def describe(self, spec: RefinerNode) -> str:
        return f"models {[spec.model]}, template `{spec.template}`, ≤{spec.max_rounds} rounds"

    def loop_bound(self, spec: RefinerNode) -> int:
        return spec.max_rounds

    def build(self, spec: RefinerNode, build: NodeBuild) -> RefinerRun:
        return RefinerRun(
            Refiner(build.make_agent(build.node, spec.model, spec.template, spec.sampling)), spec
        )
