"""KG step ops for recipes: write a multi-hop question, and check its label with a solver.

- ``kg_question``: an agent turns the item's masked chain facts into one question; the item's
  ``question`` becomes that text (a question that repeats the mask placeholder is rejected).
- ``kg_label_check``: a solver answers the question alone ``samples`` times; the share it gets
  right tags the item's difficulty, and items below ``min_correct`` are rejected for review.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from medloom.agents.agent import item_variables
from medloom.agents.context import AgentContext
from medloom.agents.parsing import parse_reasoning
from medloom.graphs.steps import BaseStep, StepBuild, StepOutput, StepParams, register_step
from medloom.records import Item, Trace
from medloom.runs.events import TraceCreated

_QUESTION_PREFIX = re.compile(r"^\s*(?:\*\*)?question(?:\*\*)?\s*[:\-]\s*", re.I)


def clean_question(text: str) -> str:
    """The first paragraph of ``text`` without a leading "Question:" label, up to its last "?"."""
    body = _QUESTION_PREFIX.sub("", text.strip())
    body = re.split(r"\n\s*\n|###|\n(?:Facts|Answer|Options?)\s*:", body, maxsplit=1)[0]
    body = " ".join(body.split())
    if "?" in body:
        body = body[: body.rindex("?") + 1]
    return body.strip()


class QuestionParams(StepParams):
    min_chars: int = Field(default=20, ge=1)


@register_step("kg_question")
class WriteQuestion(BaseStep):
    """Writes the item's question from ``data.facts`` (the chain with its answer masked)."""

    Params = QuestionParams

    def __init__(self, build: StepBuild):
        super().__init__(build)
        self.agent = build.agent()

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> StepOutput:
        texts, response = await self.agent.call(item_variables(item), ctx)
        raw = texts[0] if texts else ""
        question = clean_question(raw)
        mask = str(item.data.get("mask", "[ANSWER]"))
        if len(question) < self.params.min_chars:
            return StepOutput(
                reject=f"the question writer gave no usable question ({raw[:80]!r})",
                reject_code="no question",
            )
        if mask.lower() in question.lower():
            return StepOutput(reject=f"the question repeats the mask {mask}", reject_code="mask in question")
        trace = Trace(
            id=f"{item.id}/{self.node}",
            item_id=item.id,
            node=self.node,
            model=self.agent.model.served,
            text=question,
            finish_reason=response.choices[0].finish_reason if response.choices else None,
            meta={"question": question, "raw": raw},
        )
        ctx.send(TraceCreated(item_id=item.id, attempt=ctx.attempt, node=ctx.node, trace=trace))
        return StepOutput(traces=[trace], item=item.model_copy(update={"question": question}))


class LabelParams(StepParams):
    samples: int = Field(default=4, ge=1)
    temperature: float = Field(default=0.7, ge=0)
    min_correct: int = Field(default=1, ge=0)
    """Reject items fewer samples answer correctly (0 keeps unanswered items, tagged hard)."""
    easy_at: float = Field(default=0.75, gt=0, le=1)
    """Share of correct samples from which an item counts as easy."""


Difficulty = Literal["easy", "medium", "hard"]


def difficulty(correct: int, samples: int, easy_at: float = 0.75) -> Difficulty:
    if correct == 0:
        return "hard"
    return "easy" if correct / samples >= easy_at else "medium"


@register_step("kg_label_check")
class LabelCheck(BaseStep):
    """A solver answers from the question and options alone; tags difficulty by its accuracy."""

    Params = LabelParams

    def __init__(self, build: StepBuild):
        super().__init__(build)
        self.agent = build.agent(build.spec.template or "mcq_cot")

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> StepOutput:
        p = self.params
        texts, _ = await self.agent.call(item_variables(item), ctx, n=p.samples, temperature=p.temperature)
        answers = [parse_reasoning(t, item.options)[1] for t in texts]
        correct = sum(a == item.answer for a in answers)
        tag = difficulty(correct, len(texts) or 1, p.easy_at)
        data = {
            **item.data,
            "difficulty": tag,
            "solver_correct": correct,
            "solver_samples": len(texts),
            "solver_answers": answers,
        }
        updated = item.model_copy(update={"data": data})
        if correct < p.min_correct:
            return StepOutput(
                item=updated,
                reject=(
                    f"label check: {correct}/{len(texts)} solver samples chose the KG answer "
                    f"{item.answer} (answers {answers}); needs review"
                ),
                reject_code="label check failed",
            )
        tagged = [t.model_copy(update={"meta": {**t.meta, "difficulty": tag}}) for t in traces]
        return StepOutput(traces=tagged, item=updated)
