"""``op: clinical_rubric``: a rubric generator writes case-specific, weighted scoring criteria
(history taking, differential, tests, safety, communication) from the case record alone: it sits
after the consultation but never sees a transcript. The criteria go to ``item.data["rubric"]``
for the ``rubric`` grader node; the traces pass through unchanged.

    rubric:
      type: step
      op: clinical_rubric
      model: examiner
      template: clinical_rubric
      params: {max_criteria: 10, parse_retries: 1}

A case that already carries a rubric (``params.given: FIELD``) keeps it. A criterion copied word
for word from the prompt (its worked example, about another case) is dropped and reported. When no
reply (the first, then ``parse_retries`` more at temperature 0.7) holds a criterion, the item is
rejected: a consultation is never graded against an empty rubric.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from medloom.agents.agent import item_variables
from medloom.agents.context import AgentContext
from medloom.core.events import Note
from medloom.core.notes import NoteSchema, NoteView, Segment, register_note
from medloom.core.records import Item, Trace
from medloom.nodes.protocol import NodeOutput
from medloom.nodes.step import BaseOp, OpBuild, OpParams, register_op
from medloom.verifiers.rubric import CATEGORIES, Criterion, RubricParse, criteria_of, parse_rubric

RUBRIC_NOTE = "rubric"


class RubricParams(OpParams):
    max_criteria: int = Field(default=10, ge=1, le=40)
    parse_retries: int = Field(default=1, ge=0, le=5)
    record_field: str = "record"
    field: str = "rubric"
    """Where the criteria go in ``item.data``."""
    given: str | None = None
    """A case field holding a hand-written rubric to use instead of generating one."""


@register_op("clinical_rubric")
class ClinicalRubric(BaseOp):
    """Writes each case's weighted rubric into ``item.data``."""

    Params = RubricParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        self.agent = build.agent(build.spec.template or "clinical_rubric", name=f"{self.node}:generator")

    async def generate(self, item: Item, ctx: AgentContext) -> tuple[RubricParse, list[str]]:
        p: RubricParams = self.params
        variables = {
            **item_variables(item),
            "record": item.data.get(p.record_field, item.question),
            "categories": list(CATEGORIES),
        }
        request, _ = self.agent.build_request(variables)
        prompt = request.prompt or "\n".join(m.content or "" for m in request.messages or ())
        texts, _ = await self.agent.call(variables, ctx)
        replies = list(texts[:1])
        parsed = parse_rubric(replies[0] if replies else "", p.max_criteria, prompt)
        if not parsed.criteria and p.parse_retries:
            retry_t = max(0.7, self.agent.sampling.temperature)
            texts, _ = await self.agent.call(variables, ctx, n=p.parse_retries, temperature=retry_t)
            replies += texts
            for text in texts:
                parsed = parse_rubric(text, p.max_criteria, prompt)
                if parsed.criteria:
                    break
        return parsed, replies

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        p: RubricParams = self.params
        given = criteria_of(item.data.get(p.given)) if p.given else []
        if given:
            criteria, skipped, source = given, [], "given"
        else:
            parsed, replies = await self.generate(item, ctx)
            criteria, skipped, source = parsed.criteria, parsed.skipped, "generated"
            if not criteria:
                sample = (replies[-1] if replies else "").strip().replace("\n", " ")[:120]
                ctx.send(self._note(item, ctx, [], skipped, "none"))
                return NodeOutput(
                    reject=f"the rubric generator wrote no readable criterion in {len(replies)} replies "
                    f"(last: {sample!r}); criteria read '- [category] weight | text'",
                    reject_code="no rubric",
                )
        ctx.send(self._note(item, ctx, criteria, skipped, source))
        data = {**item.data, p.field: [c.model_dump() for c in criteria]}
        return NodeOutput(traces=traces, item=item.model_copy(update={"data": data}))

    def _note(
        self, item: Item, ctx: AgentContext, criteria: list[Criterion], skipped: list[str], source: str
    ) -> Note:
        return Note(
            item_id=item.id,
            attempt=ctx.attempt,
            node=ctx.node,
            kind=RUBRIC_NOTE,
            data={"source": source, "criteria": [c.model_dump() for c in criteria], "skipped": skipped},
        )


def _plain(value: object) -> list[Segment]:
    return [(str(value), "")]


@register_note(RUBRIC_NOTE)
class RubricNote(NoteSchema):
    """``rubric``: a case's criteria (category, weight, text) and the lines that were not criteria."""

    def facets(self, data: dict[str, Any]) -> dict[str, int]:
        criteria = data.get("criteria") or []
        return {"criteria": len(criteria), "skipped lines": len(data.get("skipped") or [])}

    def view(self, data: dict[str, Any]) -> NoteView:
        criteria = [c for c in data.get("criteria") or [] if isinstance(c, dict)]
        rows = [
            [
                _plain(c.get("id", "")),
                _plain(c.get("category", "")),
                _plain(c.get("weight", "")),
                _plain(c.get("text", "")),
            ]
            for c in criteria
        ]
        skipped = [str(s) for s in data.get("skipped") or []]
        return NoteView(
            title="rubric",
            label=[("rubric ", "bold"), (f"{len(criteria)} criteria ({data.get('source', '?')})", "")],
            facts=[("source", _plain(data.get("source", "?"))), ("skipped lines", _plain(len(skipped)))],
            table=(["id", "category", "weight", "criterion"], rows),
            lines=[[("skipped: ", "dim"), (s, "")] for s in skipped[:10]],
        )
