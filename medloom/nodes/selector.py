"""The ``selector`` node: per-item fan-in by a registered method (top_k, vote, first_passing, all).

A method is ``(traces, k) -> (kept, detail)``; register more with
``@register("selector", "name")`` (``medloom.core.registry``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, field_validator

from medloom.core.events import Selection
from medloom.core.records import Item, Trace
from medloom.core.registry import REGISTRY, UnknownName, register
from medloom.nodes.kind import NodeBuild, NodeKind, NodeSpec, register_kind
from medloom.nodes.protocol import Drop, NodeContext, NodeOutput

SelectMethod = Callable[[list[Trace], int], tuple[list[Trace], dict[str, Any]]]


class SelectorNode(NodeSpec):
    type: Literal["selector"]
    method: str = "top_k"
    """A registered selector method: ``top_k``, ``vote``, ``first_passing``, ``all``."""
    k: int = Field(default=1, ge=1)

    @field_validator("method")
    @classmethod
    def _known(cls, value: str) -> str:
        try:
            REGISTRY.get("selector", value)
        except UnknownName as exc:
            raise ValueError(str(exc)) from None
        return value


def _rank_key(trace: Trace) -> tuple[float, int, int, str]:
    """Higher score first, then passing, then fewer refinement rounds, then a stable id order."""
    verdict = trace.last_verdict
    score = trace.score if trace.score is not None else float("-inf")
    return (-score, 0 if verdict and verdict.passed else 1, trace.round, trace.id)


@register("selector", "all")
def select_all(traces: list[Trace], k: int) -> tuple[list[Trace], dict[str, Any]]:
    return list(traces), {}


@register("selector", "first_passing")
def first_passing(traces: list[Trace], k: int) -> tuple[list[Trace], dict[str, Any]]:
    for trace in sorted(traces, key=lambda t: (t.round, t.id)):
        if trace.last_verdict is not None and trace.last_verdict.passed:
            return [trace], {}
    return [], {"reason": "no trace passed"}


@register("selector", "top_k")
def top_k(traces: list[Trace], k: int) -> tuple[list[Trace], dict[str, Any]]:
    ranked = sorted(traces, key=_rank_key)
    return ranked[:k], {"scores": {t.id: t.score for t in ranked}}


@register("selector", "vote")
def vote(traces: list[Trace], k: int) -> tuple[list[Trace], dict[str, Any]]:
    """Majority vote over answers; ties go to the answer with the best-ranked trace, then by answer."""
    answers = Counter(t.answer for t in traces if t.answer is not None)
    if not answers:
        return [], {"reason": "no trace has an answer to vote with"}
    best_rank = {a: min(_rank_key(t) for t in traces if t.answer == a) for a in answers}
    top = max(answers.values())
    tied = sorted((a for a, c in answers.items() if c == top), key=lambda a: (best_rank[a], a))
    winner = tied[0]
    chosen = sorted((t for t in traces if t.answer == winner), key=_rank_key)[:k]
    return chosen, {"votes": dict(answers), "winner": winner, "tied": tied if len(tied) > 1 else []}


def select(node: SelectorNode, traces: list[Trace]) -> tuple[list[Trace], dict[str, Any]]:
    """The traces kept and a note on how (for the trajectory)."""
    method: SelectMethod = REGISTRY.get("selector", node.method)
    return method(traces, node.k)


class SelectorRun:
    def __init__(self, spec: SelectorNode):
        self.spec = spec

    async def run(self, item: Item, traces: list[Trace], ctx: NodeContext) -> NodeOutput:
        chosen, detail = select(self.spec, traces)
        method = self.spec.method
        ctx.send(
            Selection(
                item_id=item.id,
                attempt=ctx.attempt,
                node=ctx.node,
                method=method,
                selected=[t.id for t in chosen],
                candidates=[t.id for t in traces],
                detail=detail,
            )
        )
        kept = {t.id for t in chosen}
        why = str(detail.get("reason") or f"not selected by {method}")
        drops = [Drop(t, why, f"not selected ({method})", announce=False) for t in traces if t.id not in kept]
        return NodeOutput(traces=chosen, drops=drops)


@register_kind
class SelectorKind(NodeKind[SelectorNode]):
    tag = "selector"
    Spec = SelectorNode
    in_loops = False

    def describe(self, spec: SelectorNode) -> str:
        return f"{spec.method}, k={spec.k}"

    def build(self, spec: SelectorNode, build: NodeBuild) -> SelectorRun:
        return SelectorRun(spec)
