"""MedVAL's self-supervised data recipe (Aali et al., 2025) as two ops.

- ``op: medval_perturb`` (a start node): a generator rewrites the item's clean output with
  errors injected at an attack level 1-4 (template ``medval_perturb``); the trace's text is the
  perturbed output, its meta the clean one and the level. Without a clean output in the item the
  generator writes one first, at attack level 1 (as the reference code does).
- ``op: medval_grade``: the MedVAL validator (``medloom.verifiers.medval``) grades the clean and
  the perturbed output; the grades, their errors and the consistency score go to the trace's meta.
  A trace either grade of which is undecided is dropped with the reason.

``check: medval_consistency`` then keeps the pairs whose consistency is at least 0.95.
"""

from __future__ import annotations

import asyncio
import hashlib
import re

from medloom.agents.agent import item_variables
from medloom.agents.context import AgentContext
from medloom.core.records import Item, Trace
from medloom.nodes.protocol import Drop, NodeOutput
from medloom.nodes.step import BaseOp, OpBuild, OpParams, register_op
from medloom.verifiers.medval import (
    LEVELS,
    MedvalCheck,
    MedvalValidator,
    Unreadable,
    consistency_score,
    read_source,
)

_LABEL = re.compile(r"^\s*(?:rewritten output|output|candidate)\s*:\s*", re.I)
_NEXT_EXAMPLE = re.compile(r"\n\s*(?:Task|Input|Clean output|Attack level)\s*:", re.I)
"""Where a base model starts writing the next few-shot example."""


def attack_level_of(item: Item, input_text: str, field: str) -> int:
    """The item's ``field`` when it holds a level 1-4, else one drawn from a hash of the input
    (stable across runs and machines, unlike the reference code's ``hash()``)."""
    value = item.data.get(field)
    if isinstance(value, int) and 1 <= value <= LEVELS:
        return value
    if isinstance(value, str) and value.strip().isdigit() and 1 <= int(value) <= LEVELS:
        return int(value)
    digest = hashlib.sha256(input_text.encode("utf-8")).digest()
    return digest[0] % LEVELS + 1


PERTURB_VARIABLES = frozenset({"task", "input_text", "clean_output", "attack_level"})


class PerturbParams(OpParams):
    input: str = "question"
    """Where the task's input is (``question``, ``data.KEY``)."""
    clean: str = "data.reference"
    """Where the clean output is; empty there: the generator writes one at attack level 1."""
    task: str = "data.task"
    attack_level_field: str = "attack_level"
    """The item field giving the attack level; absent: drawn from a hash of the input."""


@register_op("medval_perturb")
class MedvalPerturb(BaseOp):
    """Rewrite the clean output with errors injected at the item's attack level."""

    Params = PerturbParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        self.agent = build.agent(variables=PERTURB_VARIABLES)
        for source in (self.params.input, self.params.clean, self.params.task):
            try:
                read_source(Item(id="", index=0), Trace(id="", item_id="", node="", text=""), source)
            except TypeError as exc:
                raise build.fail(str(exc), "params") from None

    async def rewrite(
        self, item: Item, task: str, input_text: str, clean: str, level: int, ctx: AgentContext
    ) -> str:
        variables = {
            **item_variables(item),
            "task": task,
            "input_text": input_text,
            "clean_output": clean,
            "attack_level": level,
        }
        texts, _ = await self.agent.call(variables, ctx)
        text = _NEXT_EXAMPLE.split(texts[0] if texts else "", maxsplit=1)[0]
        return _LABEL.sub("", text).strip()

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        blank = Trace(id="", item_id=item.id, node=self.node, text="")
        input_text = read_source(item, blank, self.params.input)
        task = read_source(item, blank, self.params.task)
        clean = read_source(item, blank, self.params.clean).strip()
        clean_source = "item"
        if not clean:
            clean, clean_source = await self.rewrite(item, task, input_text, "", 1, ctx), "generated"
        if not clean:
            return NodeOutput(reject="the generator wrote no clean output", reject_code="no clean output")
        level = attack_level_of(item, input_text, self.params.attack_level_field)
        perturbed = await self.rewrite(item, task, input_text, clean, level, ctx)
        if not perturbed:
            return NodeOutput(
                reject="the generator wrote no perturbed output", reject_code="no perturbed output"
            )
        trace = Trace(
            id=f"{item.id}/{self.node}",
            item_id=item.id,
            node=self.node,
            model=self.agent.model.served,
            text=perturbed,
            meta={
                "task": task,
                "clean_output": clean,
                "clean_source": clean_source,
                "perturbed_output": perturbed,
                "attack_level": level,
            },
        )
        ctx.trace_created(trace)
        return NodeOutput(traces=[trace])


class GradeParams(OpParams):
    input: str = "question"
    clean: str = "meta.clean_output"
    perturbed: str = "trace"
    task: str = "data.task"
    parse_retries: int = 1


@register_op("medval_grade")
class MedvalGrade(BaseOp):
    """Grade the clean and the perturbed output with the MedVAL validator; score their consistency."""

    Params = GradeParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        agent = build.agent(variables=MedvalCheck.template_variables)
        self.validator = MedvalValidator(agent, parse_retries=self.params.parse_retries)

    async def grade(self, item: Item, trace: Trace, ctx: AgentContext) -> Trace | Drop:
        p = self.params
        task, input_text = read_source(item, trace, p.task), read_source(item, trace, p.input)
        clean, perturbed = await asyncio.gather(
            self.validator.assess(item, task, input_text, read_source(item, trace, p.clean), ctx),
            self.validator.assess(item, task, input_text, read_source(item, trace, p.perturbed), ctx),
        )
        for which, result in (("clean", clean), ("perturbed", perturbed)):
            if isinstance(result, Unreadable):
                return Drop(trace, f"validator undecided on the {which} output: {result}", "undecided")
        assert not isinstance(clean, Unreadable) and not isinstance(perturbed, Unreadable)
        attack = int(trace.meta.get("attack_level", 1))
        meta = {
            **trace.meta,
            "clean_grade": clean.risk_level,
            "perturbed_grade": perturbed.risk_level,
            "clean_errors": [e.model_dump() for e in clean.errors],
            "perturbed_errors": [e.model_dump() for e in perturbed.errors],
            "consistency": round(consistency_score(clean.risk_level, perturbed.risk_level, attack), 4),
        }
        return trace.model_copy(update={"meta": meta})

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        graded = await asyncio.gather(*(self.grade(item, t, ctx) for t in traces))
        return NodeOutput(
            traces=[g for g in graded if isinstance(g, Trace)],
            drops=[g for g in graded if isinstance(g, Drop)],
        )
