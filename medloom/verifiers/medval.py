"""MedVAL (Aali et al., 2025): validate a generated medical text against its input.

A judge model reads the input (a report, a medication question, a patient query) and the output
written from it, and states a **risk level** 1-4 (1 no risk, 2 low, 3 moderate, 4 high) with
**typed errors** (hallucination, omission, certainty misalignment), each with the sentences it
concerns. ``check: medval`` (with ``model: ALIAS``) makes it a verifier in any graph: levels up
to ``safe_max`` (default 2) pass. Output the judge's reply cannot be read from, or a level outside
1-4, gives an *undecided* verdict with the reason: never a pass.

The paper's self-supervised filter grades a clean output and an error-injected one (attack level
``a``) and keeps the pair when :func:`consistency_score` is at least 0.95 (``check:
medval_consistency``, after ``op: medval_grade``).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from medloom.agents.agent import Agent, item_variables
from medloom.agents.context import AgentContext
from medloom.agents.parsing import parse_json_object
from medloom.core.records import Item, Trace, Verdict
from medloom.verifiers.base import Check, ModelCheck, register_check

LEVELS = 4
RISK_LABELS = {1: "no risk", 2: "low risk", 3: "moderate risk", 4: "high risk"}
ErrorKind = Literal["hallucination", "omission", "certainty_misalignment"]
ERROR_KINDS: tuple[ErrorKind, ...] = ("hallucination", "omission", "certainty_misalignment")

_KIND_WORDS: list[tuple[str, ErrorKind]] = [
    ("hallucinat", "hallucination"),
    ("fabricat", "hallucination"),
    ("misidentif", "hallucination"),
    ("false comparison", "hallucination"),
    ("incorrect recommendation", "hallucination"),
    ("omission", "omission"),
    ("omit", "omission"),
    ("missing", "omission"),
    ("certainty", "certainty_misalignment"),
    ("overstat", "certainty_misalignment"),
    ("understat", "certainty_misalignment"),
    ("intensity", "certainty_misalignment"),
]
"""Words a judge may use for each error type (the paper's eleven categories fold into three)."""


def error_kind(word: str) -> ErrorKind | None:
    """The error type a judge's label names (None for a label of no known type)."""
    lowered = word.strip().lower().replace("_", " ")
    return next((kind for cue, kind in _KIND_WORDS if cue in lowered), None)


class MedvalError(BaseModel):
    """One error the validator found."""

    kind: ErrorKind
    sentences: list[str] = Field(default_factory=list)
    """The output sentences it concerns (for an omission: the input's sentence left out)."""
    explanation: str = ""

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, value: Any) -> Any:
        return error_kind(value) or value if isinstance(value, str) else value

    @field_validator("sentences", mode="before")
    @classmethod
    def _sentences(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class MedvalAssessment(BaseModel):
    """The validator's reading of one output: its risk level and the errors behind it."""

    risk_level: int = Field(ge=1, le=LEVELS)
    errors: list[MedvalError] = Field(default_factory=list)

    @property
    def label(self) -> str:
        return RISK_LABELS[self.risk_level]


class Unreadable(ValueError):
    """The judge's reply gives no risk level 1-4 (the message says what it gave)."""


_LEVEL = re.compile(r"risk\s*(?:level)?\s*[:=\-]?\s*\**\s*(-?\d+)", re.I)
_LEADING_LEVEL = re.compile(r"^\s*\**\s*(-?\d+)\b")
_ERROR_LINE = re.compile(
    r"^\s*(?:[-*•]|\d+[.)]|error\s*\d*\s*[:.)-]?)?\s*([A-Za-z][A-Za-z _-]{2,40}?)\s*:\s*(.+)$"
)
_NEXT_EXAMPLE = re.compile(r"\n\s*(?:Task|Input|Output)\s*:", re.I)
_QUOTED = re.compile(r"[\"“]([^\"”]{3,})[\"”]")


def _level_of(text: str) -> int:
    found = _LEVEL.search(text) or _LEADING_LEVEL.search(text)
    if found is None:
        sample = text.strip().replace("\n", " ")[:120]
        raise Unreadable(f"no risk level in the judge's reply: {sample!r}")
    level = int(found.group(1))
    if not 1 <= level <= LEVELS:
        raise Unreadable(f"risk level {level} is outside 1-{LEVELS}")
    return level


def _error_of(kind: ErrorKind, rest: str) -> MedvalError:
    sentences = _QUOTED.findall(rest)
    explanation = _QUOTED.sub("", rest).strip(" |:-—–.;,") if sentences else rest.strip()
    if "|" in rest and sentences:
        explanation = rest.rsplit("|", 1)[1].strip()
    return MedvalError(kind=kind, sentences=sentences, explanation=explanation)


def parse_assessment(text: str) -> MedvalAssessment:
    """A judge's reply as an assessment: JSON (``risk_level``, ``errors``: [{``kind`` or ``type``,
    ``sentences``, ``explanation``}]) or ``Risk level: N`` with one ``- TYPE: "sentence" | why``
    line per error. Raises :class:`Unreadable` without a level 1-4. What follows a new ``Task:``,
    ``Input:`` or ``Output:`` line (a base model writing the next example) is ignored."""
    text = _NEXT_EXAMPLE.split(text, maxsplit=1)[0]
    obj = parse_json_object(text)
    if obj is not None and ("risk_level" in obj or "risk" in obj):
        raw = obj.get("risk_level", obj.get("risk"))
        level = _level_of(f"risk level {raw}")
        errors = []
        for e in obj.get("errors") or []:
            if isinstance(e, dict) and error_kind(str(e.get("kind") or e.get("type") or "")):
                data = {**e, "kind": e.get("kind") or e.get("type")}
                try:
                    errors.append(MedvalError.model_validate(data))
                except ValidationError:
                    continue
        return MedvalAssessment(risk_level=level, errors=errors)
    level = _level_of(text)
    errors = []
    for line in text.splitlines():
        match = _ERROR_LINE.match(line)
        if match is None or _LEVEL.match(line.strip()):
            continue
        kind = error_kind(match.group(1))
        if kind is not None:
            errors.append(_error_of(kind, match.group(2)))
    return MedvalAssessment(risk_level=level, errors=errors)


def scaled(level: int, levels: int = LEVELS) -> float:
    """A level 1..levels on [0, 1] (the paper's scaling of risk grades and attack levels)."""
    return (level - 1) / (levels - 1)


def consistency_score(clean: int, perturbed: int, attack: int, levels: int = LEVELS) -> float:
    """``1 - [c² + (a - δ)² + (a - c - δ)²] / 6`` with the clean grade ``c``, the perturbed output's
    grade ``a`` and the attack level ``δ``, all scaled to [0, 1] (the reference code's
    ``validator_metric``): 1.0 when the clean output is graded risk-free and the perturbed one
    exactly at its attack level."""
    c, a, delta = scaled(clean, levels), scaled(perturbed, levels), scaled(attack, levels)
    return 1 - (c**2 + (a - delta) ** 2 + (a - c - delta) ** 2) / 6


def read_source(item: Item, trace: Trace, source: str) -> str:
    """The text a source names: ``question``, ``answer`` (the item's), ``trace`` (its text),
    ``trace.answer``, ``data.KEY`` (an item field) or ``meta.KEY`` (a trace's meta)."""
    if source == "question":
        return item.question
    if source == "answer":
        return item.gold_text or ""
    if source == "trace":
        return trace.text
    if source == "trace.answer":
        return trace.answer or ""
    scope, _, key = source.partition(".")
    if scope in ("data", "meta") and key:
        value = (item.data if scope == "data" else trace.meta).get(key)
        return "" if value is None else str(value)
    raise TypeError(
        f"unknown source {source!r}: use question, answer, trace, trace.answer, data.KEY or meta.KEY"
    )


def _check_source(source: str) -> str:
    read_source(Item(id="", index=0), Trace(id="", item_id="", node="", text=""), source)
    return source


class MedvalValidator:
    """Asks an agent for an assessment of ``output`` written from ``input`` for ``task``."""

    def __init__(self, agent: Agent, *, parse_retries: int = 1):
        self.agent = agent
        self.parse_retries = parse_retries

    async def assess(
        self, item: Item, task: str, input_text: str, output_text: str, ctx: AgentContext | None = None
    ) -> MedvalAssessment | Unreadable:
        """The assessment, or why the judge's replies could not be read (after ``parse_retries``)."""
        variables = {
            **item_variables(item),
            "task": task,
            "input_text": input_text,
            "output_text": output_text,
        }
        texts, _ = await self.agent.call(variables, ctx)
        problem = Unreadable("the judge returned no text")
        for attempt in range(self.parse_retries + 1):
            if attempt:
                retry_t = max(0.7, self.agent.sampling.temperature)
                texts, _ = await self.agent.call(variables, ctx, temperature=retry_t)
            for text in texts:
                try:
                    return parse_assessment(text)
                except Unreadable as exc:
                    problem = exc
        return problem


@register_check("medval")
class MedvalCheck(ModelCheck):
    """MedVAL's validator as a verifier: passes outputs graded at most ``safe_max``.

    ``input`` and ``output`` name where the texts are (see :func:`read_source`; default: the
    item's ``question`` and the trace's text); ``task`` names the task's field (its instruction is
    in the template). The verdict's ``detail`` is the :class:`MedvalAssessment`.
    """

    name = "medval"
    default_template = "medval_validate"
    template_variables: ClassVar[frozenset[str]] = frozenset({"task", "input_text", "output_text"})

    def __init__(
        self,
        input: str = "question",
        output: str = "trace",
        task: str = "data.task",
        safe_max: int = 2,
        parse_retries: int = 1,
    ):
        if not 1 <= safe_max < LEVELS:
            raise TypeError(f"safe_max must be 1-{LEVELS - 1} (levels up to it pass), got {safe_max}")
        self.input, self.output, self.task = _check_source(input), _check_source(output), _check_source(task)
        self.safe_max = safe_max
        self.parse_retries = parse_retries

    async def verify(self, item: Item, trace: Trace, ctx: AgentContext | None = None) -> Verdict:
        node = ctx.node if ctx else None
        input_text, output_text = read_source(item, trace, self.input), read_source(item, trace, self.output)
        missing = [
            s for s, text in ((self.input, input_text), (self.output, output_text)) if not text.strip()
        ]
        if missing:
            return self.undecided(f"nothing to validate at {', '.join(missing)}", node)
        validator = MedvalValidator(self.agent, parse_retries=self.parse_retries)
        task = read_source(item, trace, self.task)
        result = await validator.assess(item, task, input_text, output_text, ctx)
        if isinstance(result, Unreadable):
            return self.undecided(str(result), node)
        return assessment_verdict(result, self.safe_max, self.name, node)

    def undecided(self, why: str, node: str | None) -> Verdict:
        return Verdict(
            passed=False, undecided=True, reasons=[f"undecided: {why}"], verifier=self.name, node=node
        )


def assessment_verdict(result: MedvalAssessment, safe_max: int, verifier: str, node: str | None) -> Verdict:
    """Passed when the level is at most ``safe_max``; score 1 (no risk) .. 0 (high risk)."""
    reasons = [f"risk level {result.risk_level} ({result.label})"]
    for e in result.errors:
        said = "; ".join(repr(s) for s in e.sentences)
        reasons.append(f"{e.kind}: {said}{' - ' if said and e.explanation else ''}{e.explanation}")
    return Verdict(
        passed=result.risk_level <= safe_max,
        score=round(1 - scaled(result.risk_level), 4),
        reasons=reasons,
        verifier=verifier,
        node=node,
        detail=result.model_dump(),
    )


@register_check("medval_consistency")
class MedvalConsistency(Check):
    """The paper's filter: keeps a pair whose grades (``op: medval_grade``'s ``meta``) agree with
    its attack level, :func:`consistency_score` at least ``min_score``."""

    name = "medval_consistency"

    def __init__(self, min_score: float = 0.95, levels: int = LEVELS):
        self.min_score = min_score
        self.levels = levels

    def check(self, item: Item, trace: Trace) -> Verdict:
        meta = trace.meta
        keys = ("clean_grade", "perturbed_grade", "attack_level")
        if any(not isinstance(meta.get(k), int) for k in keys):
            absent = ", ".join(k for k in keys if not isinstance(meta.get(k), int))
            return self.verdict(False, [f"no {absent} on the trace: put op medval_grade before this check"])
        clean, perturbed, attack = (int(meta[k]) for k in keys)
        value = round(consistency_score(clean, perturbed, attack, self.levels), 4)
        said = f"consistency {value:.3f} (clean {clean}, perturbed {perturbed}, attack level {attack})"
        if value >= self.min_score:
            return self.verdict(True, [said], score=value)
        return self.verdict(False, [f"{said} < {self.min_score}"], score=value)
