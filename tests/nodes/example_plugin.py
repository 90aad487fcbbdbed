"""A test-only plugin: a new node kind (``tally``) and a new op (``shout``) whose notes
(``shouted``) the report and the viewer summarise as it declares, defined without touching any
file of the package. ``setup`` is what a ``medloom.plugins`` entry point names."""

from __future__ import annotations

from typing import Any, Literal

from medloom.agents.context import AgentContext
from medloom.core.events import Note
from medloom.core.notes import NoteSchema, NoteView
from medloom.core.records import Item, Trace
from medloom.core.registry import Registry
from medloom.nodes.kind import NodeBuild, NodeKind, NodeSpec
from medloom.nodes.protocol import NodeContext, NodeOutput
from medloom.nodes.step import BaseOp, OpParams


class TallySpec(NodeSpec):
    type: Literal["tally"]
    label: str = "seen"


class TallyNode:
    """Stamps each trace with how many traces reached the node together, and counts them."""

    def __init__(self, label: str):
        self.label = label

    async def run(self, item: Item, traces: list[Trace], ctx: NodeContext) -> NodeOutput:
        ctx.stats.passed += len(traces)
        return NodeOutput(
            traces=[t.model_copy(update={"meta": {**t.meta, self.label: len(traces)}}) for t in traces]
        )


class TallyKind(NodeKind[TallySpec]):
    tag = "tally"
    Spec = TallySpec

    def build(self, spec: TallySpec, build: NodeBuild) -> TallyNode:
        return TallyNode(spec.label)


class ShoutedNote(NoteSchema):
    """``shouted``: what the op wrote; the report counts answers, the viewer shows them."""

    def facets(self, data: dict[str, Any]) -> dict[str, int]:
        return {str(data.get("answer")): 1}

    def view(self, data: dict[str, Any]) -> NoteView:
        return NoteView(
            title="shouted",
            label=[("shout ", "bold"), (str(data.get("shout")), "")],
            facts=[("answer", [(str(data.get("answer")), "")])],
        )


class ShoutParams(OpParams):
    suffix: str = "!"


class Shout(BaseOp):
    """Writes the trace's answer, shouted, into ``meta.shout``."""

    Params = ShoutParams

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        suffix = self.params.suffix
        for t in traces:
            data = {"answer": t.answer, "shout": f"{t.answer}{suffix}"}
            ctx.send(Note(item_id=item.id, attempt=ctx.attempt, node=ctx.node, kind="shouted", data=data))
        return NodeOutput(
            traces=[t.model_copy(update={"meta": {**t.meta, "shout": f"{t.answer}{suffix}"}}) for t in traces]
        )


def setup(registry: Registry) -> None:
    registry.add("node", "tally", TallyKind())
    registry.add("op", "shout", Shout)
    registry.add("note", "shouted", ShoutedNote())
