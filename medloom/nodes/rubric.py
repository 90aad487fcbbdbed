"""The ``rubric`` node: a rubric grader (``medloom.verifiers.rubric``) scores each consultation
criterion by criterion against its case's rubric; the verdict carries every criterion's weight,
judgement and points, and ``score`` is the total (so ``selector: top_k`` picks the best).

    grade:
      type: rubric
      model: examiner
      template: rubric_grade
      pass_score: 0.5

A criterion whose grading reply cannot be read is undecided: listed in the verdict's reasons and
the ``rubric_grade`` note, never counted as met.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import Field

from medloom.agents.agent import Sampling
from medloom.core.events import Note
from medloom.core.notes import NoteSchema, NoteView, Segment, register_note
from medloom.core.records import Item, Trace
from medloom.nodes.kind import NodeBuild, NodeKind, NodeSpec, TemplateUse, register_kind
from medloom.nodes.protocol import NodeContext, NodeOutput
from medloom.verifiers.rubric import RubricCheck, RubricGrader, rubric_total

GRADE_NOTE = "rubric_grade"


class RubricNode(NodeSpec):
    type: Literal["rubric"]
    model: str
    template: str = "rubric_grade"
    rubric_field: str = "rubric"
    """The ``item.data`` field holding the case's criteria (written by ``op: clinical_rubric``)."""
    pass_score: float = Field(default=0.5, ge=0, le=1)
    """The least total (0–1) that passes."""
    sampling: Sampling = Field(default_factory=lambda: Sampling(max_tokens=48))


class RubricRun:
    def __init__(self, grader: RubricGrader):
        self.grader = grader

    async def run(self, item: Item, traces: list[Trace], ctx: NodeContext) -> NodeOutput:
        verdicts = await asyncio.gather(*(self.grader.verify(item, t, ctx) for t in traces))
        out: list[Trace] = []
        for trace, verdict in zip(traces, verdicts, strict=True):
            scores = [c.model_dump() for c in verdict.criteria]
            total = rubric_total(verdict.criteria)
            ctx.send(
                Note(
                    item_id=item.id,
                    attempt=ctx.attempt,
                    node=ctx.node,
                    kind=GRADE_NOTE,
                    trace_id=trace.id,
                    data={
                        "criteria": scores,
                        "achieved": total.achieved,
                        "possible": total.possible,
                        "total": verdict.score,
                        "undecided": total.undecided,
                        "passed": verdict.passed,
                    },
                )
            )
            meta = {
                "rubric_scores": scores,
                "rubric_total": verdict.score,
                "rubric_undecided": total.undecided,
            }
            out.append(ctx.judged(trace, verdict, meta))
        return NodeOutput(traces=out)


@register_kind
class RubricKind(NodeKind[RubricNode]):
    tag = "rubric"
    Spec = RubricNode
    gives_verdicts = True

    def templates(self, spec: RubricNode) -> list[TemplateUse]:
        return [TemplateUse(spec.template, spec.model, "template", RubricCheck.template_variables)]

    def describe(self, spec: RubricNode) -> str:
        return f"rubric grader `{spec.model}` (template `{spec.template}`), pass at total ≥ {spec.pass_score}"

    def build(self, spec: RubricNode, build: NodeBuild) -> RubricRun:
        agent = build.make_agent(f"{build.node}:grader", spec.model, spec.template, spec.sampling)
        return RubricRun(RubricGrader(agent, rubric_field=spec.rubric_field, pass_score=spec.pass_score))


def _plain(value: object) -> list[Segment]:
    return [(str(value), "")]


def _met(value: object) -> Segment:
    if value is None:
        return ("undecided", "yellow")
    return ("met", "green") if value else ("not met", "red")


@register_note(GRADE_NOTE)
class RubricGradeNote(NoteSchema):
    """``rubric_grade``: each criterion's judgement and points, and the total."""

    def facets(self, data: dict[str, Any]) -> dict[str, int]:
        criteria = data.get("criteria") or []
        return {
            "criteria met": sum(1 for c in criteria if isinstance(c, dict) and c.get("met")),
            "criteria undecided": int(data.get("undecided") or 0),
        }

    def view(self, data: dict[str, Any]) -> NoteView:
        criteria = [c for c in data.get("criteria") or [] if isinstance(c, dict)]
        rows = [
            [
                _plain(c.get("id", "")),
                _plain(c.get("category", "")),
                _plain(c.get("weight", "")),
                [_met(c.get("met"))],
                _plain(c.get("text", "")),
            ]
            for c in criteria
        ]
        total = data.get("total")
        shown = f"{total:.3f}" if isinstance(total, int | float) else "?"
        label: list[Segment] = [
            ("rubric ", "bold"),
            (f"total {shown}", "green" if data.get("passed") else "red"),
        ]
        if data.get("undecided"):
            label.append((f" ({data['undecided']} undecided)", "yellow"))
        return NoteView(
            title="rubric grade",
            label=label,
            facts=[
                ("points", _plain(f"{data.get('achieved', '?')} of {data.get('possible', '?')}")),
                ("total", _plain(shown)),
                ("undecided", _plain(data.get("undecided", 0))),
            ],
            table=(["id", "category", "weight", "judgement", "criterion"], rows),
        )
