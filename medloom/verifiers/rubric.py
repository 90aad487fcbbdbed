"""Clinical rubrics (Baichuan-M2's verifier system): case-specific weighted criteria, read from a
rubric generator's reply, and a grader that judges a consultation criterion by criterion.

A criterion line reads ``- [history] 3 | Asks when the cough started.``: a category (history,
differential, tests, safety, communication), an integer weight in [-10, 10] (negative: a pitfall
that costs points when met) and the text. The total follows HealthBench's rubric score: the
weights of the met criteria over the sum of the positive weights, clipped to [0, 1]. A criterion
whose grading reply cannot be read is *undecided*: reported, never counted as met.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from medloom.agents.agent import Agent, item_variables
from medloom.agents.context import AgentContext
from medloom.core.records import CriterionScore, Item, Trace, Verdict
from medloom.core.text import normalise
from medloom.verifiers.base import ModelCheck, register_check

CATEGORIES: tuple[str, ...] = ("history", "differential", "tests", "safety", "communication")
"""The rubric dimensions, in the order a rubric lists them."""

_ALIASES = {
    "history": "history",
    "history taking": "history",
    "history-taking": "history",
    "differential": "differential",
    "differential diagnosis": "differential",
    "diagnosis": "differential",
    "tests": "tests",
    "test": "tests",
    "investigations": "tests",
    "workup": "tests",
    "safety": "safety",
    "communication": "communication",
    "empathy": "communication",
}
MAX_WEIGHT = 10

_CRITERION = re.compile(
    r"^\s*(?:[-*•]|\d+[.)])?\s*\[\s*(?P<cat>[A-Za-z][A-Za-z -]*?)\s*\]\s*[:,]?\s*"
    r"\(?\s*(?:weight\s*[:=]?\s*)?(?P<weight>[+-]?\d+)\s*(?:points?)?\s*\)?\s*[|:.)-]?\s*(?P<text>.+?)\s*$",
    re.I,
)
_JUDGEMENT = re.compile(
    r"^\W*(?:(?:verdict|judgement|judgment|answer|met)\s*[:\-]\s*)?\**\s*"
    r"(?P<word>not met|unmet|met|yes|no|true|false)\b",
    re.I,
)
_REASON = re.compile(r"reason\s*[:\-]\s*(.+)", re.I)


class Criterion(BaseModel):
    """One scoring criterion of a case's rubric."""

    id: str
    category: str
    weight: int = Field(ge=-MAX_WEIGHT, le=MAX_WEIGHT)
    text: str


@dataclass(frozen=True)
class RubricParse:
    criteria: list[Criterion]
    skipped: list[str]
    """Non-empty lines that were not criteria (for the trajectory)."""


def category_of(name: str) -> str | None:
    return _ALIASES.get(re.sub(r"\s+", " ", name.strip().lower()))


def parse_rubric(text: str, max_criteria: int = 12, prompt: str = "") -> RubricParse:
    """The criteria in a generator's reply: one per line; duplicates, zero weights and criteria
    copied word for word from ``prompt`` (its worked example: not about this case) dropped."""
    criteria: list[Criterion] = []
    skipped: list[str] = []
    seen: set[str] = set()
    shown = f" {normalise(prompt)} "
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _CRITERION.match(line)
        category = category_of(m.group("cat")) if m else None
        body = m.group("text").strip() if m else ""
        if m is None or category is None or len(body.split()) < 3:
            skipped.append(line.strip())
            continue
        weight = max(-MAX_WEIGHT, min(MAX_WEIGHT, int(m.group("weight"))))
        key = normalise(body)
        if prompt and f" {key} " in shown:
            skipped.append(f"copied from the prompt: {line.strip()}")
            continue
        if weight == 0 or key in seen or len(criteria) >= max_criteria:
            skipped.append(line.strip())
            continue
        seen.add(key)
        criteria.append(Criterion(id=f"c{len(criteria) + 1}", category=category, weight=weight, text=body))
    return RubricParse(criteria, skipped)


def criteria_of(value: Any) -> list[Criterion]:
    """A rubric stored in ``item.data`` (a list of criterion mappings) as criteria."""
    if not isinstance(value, list):
        return []
    return [Criterion.model_validate(c) for c in value]


def parse_judgement(text: str) -> tuple[bool | None, str]:
    """(met, reason) from a grader's reply; met is None when the reply holds no judgement."""
    m = _JUDGEMENT.search(text.strip())
    reason_m = _REASON.search(text)
    reason = reason_m.group(1).strip() if reason_m else ""
    if m is None:
        return None, reason
    return m.group("word").lower() in ("met", "yes", "true"), reason


@dataclass(frozen=True)
class RubricTotal:
    achieved: float
    possible: float
    total: float
    undecided: int


def rubric_total(scores: Iterable[CriterionScore]) -> RubricTotal:
    """HealthBench's rubric score: points of the met criteria (pitfalls subtract) over the sum of
    the positive weights, clipped to [0, 1]; undecided criteria earn nothing and cost nothing."""
    scores = list(scores)
    achieved = sum(s.weight for s in scores if s.met)
    possible = sum(s.weight for s in scores if s.weight > 0)
    total = max(0.0, min(1.0, achieved / possible)) if possible > 0 else 0.0
    return RubricTotal(achieved, possible, total, sum(1 for s in scores if s.met is None))


def transcript_text(turns: list[dict[str, Any]]) -> str:
    """A consultation's turns as ``Doctor: …`` / ``Patient: …`` lines."""
    return "\n".join(f"{str(t.get('speaker', '?')).capitalize()}: {t.get('text', '')}" for t in turns)


class RubricGrader:
    """Judges a consultation trace against its item's rubric, one LLM call per criterion."""

    def __init__(self, agent: Agent, *, rubric_field: str = "rubric", pass_score: float = 0.5):
        self.agent = agent
        self.name = agent.name
        self.rubric_field = rubric_field
        self.pass_score = pass_score

    async def grade(
        self, item: Item, trace: Trace, criterion: Criterion, ctx: AgentContext
    ) -> CriterionScore:
        turns = list(trace.meta.get("transcript") or [])
        variables = {
            **item_variables(item),
            "criterion": criterion,
            "transcript": turns,
            "transcript_text": transcript_text(turns) if turns else trace.text,
            "conclusion": trace.answer or "(no conclusion)",
        }
        texts, _ = await self.agent.call(variables, ctx)
        reply = texts[0] if texts else ""
        met, reason = parse_judgement(reply)
        if met is None:
            sample = reply.strip().replace("\n", " ")[:80]
            reason = f"undecided: grader reply unreadable ({sample!r})"
        return CriterionScore(
            id=criterion.id,
            category=criterion.category,
            text=criterion.text,
            weight=criterion.weight,
            met=met,
            points=float(criterion.weight) if met else 0.0,
            reason=reason,
        )

    async def verify(self, item: Item, trace: Trace, ctx: AgentContext | None = None) -> Verdict:
        ctx = ctx or AgentContext(item_id=item.id)
        criteria = criteria_of(item.data.get(self.rubric_field))
        if not criteria:
            return Verdict(
                passed=False,
                score=0.0,
                reasons=[
                    f"no rubric in item.data['{self.rubric_field}']: put a clinical_rubric step before "
                    "the grader (or give the cases a rubric field)"
                ],
                verifier=self.name,
                node=ctx.node,
            )
        scores = list(await asyncio.gather(*(self.grade(item, trace, c, ctx) for c in criteria)))
        total = rubric_total(scores)
        reasons = [
            f"rubric total {total.total:.3f} ({total.achieved:g} of {total.possible:g} points, "
            f"{sum(1 for s in scores if s.met)} of {len(scores)} criteria met, pass at {self.pass_score:g})"
        ]
        undecided = [s for s in scores if s.met is None]
        if undecided:
            reasons.append(
                f"{len(undecided)} undecided (not counted as met): " + ", ".join(s.id for s in undecided)
            )
        return Verdict(
            passed=total.total >= self.pass_score and total.undecided < len(scores),
            score=total.total,
            reasons=reasons,
            verifier=self.name,
            node=ctx.node,
            undecided=total.undecided == len(scores),
            criteria=scores,
        )


@register_check("rubric")
class RubricCheck(ModelCheck):
    """The rubric grader as a check for any verifier node (``check: rubric``, ``model: ALIAS``);
    the ``rubric`` node kind does the same and also writes the scores to ``trace.meta``."""

    name = "rubric"
    default_template = "rubric_grade"
    template_variables = frozenset({"criterion", "transcript", "transcript_text", "conclusion"})

    def __init__(self, rubric_field: str = "rubric", pass_score: float = 0.5):
        self.rubric_field = rubric_field
        self.pass_score = pass_score

    async def verify(self, item: Item, trace: Trace, ctx: AgentContext | None = None) -> Verdict:
        grader = RubricGrader(self.agent, rubric_field=self.rubric_field, pass_score=self.pass_score)
        return await grader.verify(item, trace, ctx)
