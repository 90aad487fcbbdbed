"""Reasoning recall (MedCaseReasoning): an LLM judges a solver's diagnostic reasoning against a case's
reference diagnosis and its numbered clinician reasoning statements.

``op: reasoning_recall`` starts an item (no incoming edge). The item is one solver answer to one
case, as ``medloom eval --metric recall`` writes them: ``question`` (the case), ``answer`` (the
reference diagnosis), ``data.response`` (the solver's text), ``data.predicted`` (its final
diagnosis, may be empty) and ``data.statements`` (the reference reasoning statements). The op makes
one judge call for the diagnosis (template ``diagnosis_template``, reply ``Match: yes|no``) and one
per statement (``statement_template``, reply ``Covered: yes|no``); each judgement is a
``recall_judgement`` note beside its ``llm_call``. ``data.controls`` (optional: another case's
diagnosis or statement, ``{"kind", "subject"}``) are judged the same way but should be answered
"no"; they are marked ``control`` and only measure the judge's bias toward "yes". A reply that
says neither yes nor no is *undecided*: counted apart, never as a match or as covered. The trace
(the solver's text) gets a verdict whose score is the case's recall (covered / statements) and
``meta.recall`` with the counts.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Literal

from medloom.agents.agent import item_variables
from medloom.agents.context import AgentContext
from medloom.core.notes import NoteSchema, register_note
from medloom.core.records import Item, Trace, Verdict
from medloom.nodes.protocol import NodeOutput
from medloom.nodes.step import BaseOp, OpBuild, OpParams, register_op

RECALL_JUDGEMENT = "recall_judgement"

Decision = Literal["yes", "no", "undecided"]

_DECISION = re.compile(r"^[\W_]*(?:(?:match|covered|valid|answer|verdict)\s*:)?[\W_]*(yes|no)\b", re.I)


def parse_decision(reply: str) -> Decision:
    """``yes``/``no`` from the start of a judge's reply (optionally labelled ``Match:``,
    ``Covered:`` or ``Valid:``); anything else is ``undecided``."""
    hit = _DECISION.match(reply.strip())
    if hit is None:
        return "undecided"
    return "yes" if hit.group(1).lower() == "yes" else "no"


def statements_of(value: Any) -> list[str]:
    """Reference reasoning statements from a list, or from text numbered ``1.``/``1)`` per line."""
    if isinstance(value, list | tuple):
        return [str(s).strip() for s in value if str(s).strip()]
    if not isinstance(value, str):
        return []
    parts = re.split(r"(?:^|\n)\s*\d+\s*[.)]\s+", value)
    return [p.strip() for p in parts if p.strip()]


_MATCH_WORDS = {"yes": "matches", "no": "does not match", "undecided": "undecided"}


class RecallParams(OpParams):
    diagnosis_template: str = "recall_diagnosis"
    statement_template: str = "recall_statement"


@register_op("reasoning_recall")
class ReasoningRecall(BaseOp):
    """Judge one solver answer: diagnosis match and coverage of each reference statement."""

    Params = RecallParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        self.diagnosis_judge = build.agent(self.params.diagnosis_template, name=f"{build.node}:diagnosis")
        self.statement_judge = build.agent(self.params.statement_template, name=f"{build.node}:statement")

    async def _judge(
        self,
        kind: str,
        index: int,
        variables: dict[str, Any],
        item: Item,
        ctx: AgentContext,
        control: bool = False,
    ) -> dict[str, Any]:
        agent = self.diagnosis_judge if kind == "diagnosis" else self.statement_judge
        texts, _ = await agent.call(variables, ctx)
        reply = texts[0] if texts else ""
        judgement = {
            "kind": kind,
            "index": index,
            "subject": variables.get("statement") if kind == "statement" else variables.get("predicted"),
            "decision": parse_decision(reply),
            "reply": reply,
            "control": control,
        }
        ctx.note(RECALL_JUDGEMENT, judgement)
        return judgement

    @staticmethod
    def _controls(item: Item) -> list[dict[str, str]]:
        raw = item.data.get("controls") or []
        return [c for c in raw if isinstance(c, dict) and c.get("kind") in ("diagnosis", "statement")]

    def _control(
        self,
        index: int,
        control: dict[str, str],
        base: dict[str, Any],
        response: str,
        predicted: str,
        item: Item,
        ctx: AgentContext,
    ) -> Any:
        """A judgement whose right answer is "no" (another case's statement or diagnosis): how
        often the judge says yes to those measures its bias; never counted in the case's figures."""
        subject = str(control.get("subject", ""))
        if control["kind"] == "diagnosis":
            variables = {**base, "gold": subject, "predicted": predicted or "(none)", "reasoning": response}
        else:
            variables = {**base, "statement": subject, "reasoning": response or "(none)"}
        return self._judge(control["kind"], index, variables, item, ctx, control=True)

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        response = str(item.data.get("response") or "")
        predicted = str(item.data.get("predicted") or "").strip()
        statements = statements_of(item.data.get("statements"))
        trace = Trace(
            id=f"{item.id}:answer",
            item_id=item.id,
            node=ctx.node or "recall",
            text=response,
            answer=predicted or None,
        )
        ctx.trace_created(trace)
        base = item_variables(item)
        jobs = [
            self._judge(
                "diagnosis", 0, {**base, "predicted": predicted or "(none)", "reasoning": response}, item, ctx
            )
        ]
        if not predicted:
            jobs = []  # no final diagnosis: nothing to judge, it does not match
        jobs += [
            self._judge(
                "statement", i, {**base, "statement": s, "reasoning": response or "(none)"}, item, ctx
            )
            for i, s in enumerate(statements, 1)
        ]
        jobs += [
            self._control(i, c, base, response, predicted, item, ctx)
            for i, c in enumerate(self._controls(item), 1)
        ]
        judged = await asyncio.gather(*jobs)
        scored = [j for j in judged if not j["control"]]
        diagnosis = next((j["decision"] for j in scored if j["kind"] == "diagnosis"), "no")
        decisions = [j["decision"] for j in scored if j["kind"] == "statement"]
        covered, undecided = decisions.count("yes"), decisions.count("undecided")
        recall = covered / len(statements) if statements else 0.0
        summary = {
            "diagnosis": diagnosis,
            "statements": len(statements),
            "covered": covered,
            "undecided": undecided,
            "recall": recall,
            "judgements": judged,
        }
        verdict = Verdict(
            passed=diagnosis == "yes",
            score=recall,
            reasons=[
                f"diagnosis {_MATCH_WORDS[diagnosis]}; "
                f"{covered} of {len(statements)} reasoning statements covered ({undecided} undecided)"
            ],
            verifier="reasoning_recall",
            node=ctx.node,
        )
        trace = trace.model_copy(update={"verdicts": [verdict], "meta": {"recall": summary}})
        ctx.verdict(trace.id, verdict)
        return NodeOutput(traces=[trace])


@register_note(RECALL_JUDGEMENT)
class RecallJudgementNote(NoteSchema):
    """``recall_judgement``: one judge decision on a diagnosis or a reasoning statement."""

    def facets(self, data: dict[str, Any]) -> dict[str, int]:
        return {f"{data.get('kind', '?')} {data.get('decision', '?')}": 1}
