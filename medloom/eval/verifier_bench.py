"""Precision and recall of a verifier on labelled cases (see :mod:`medloom.eval.injection`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from medloom.eval.injection import CORRECT, QUESTION_KINDS, Case


class KindFigures(BaseModel):
    """One error kind: ``caught`` of ``cases`` injected cases rejected; ``false_rejections`` of
    the ``bases`` correct cases they were made from rejected too."""

    cases: int
    caught: int
    bases: int
    false_rejections: int
    recall: float
    precision: float | None
    """caught / (caught + false_rejections): the kind against as many correct cases of the same items."""


class VerifierFigures(BaseModel):
    name: str
    check: str
    params: dict[str, Any] = Field(default_factory=dict)
    what: str = ""
    scope: list[str] = Field(default_factory=list)
    """The error kinds this verifier is meant to catch (its recall and precision are over these)."""
    kinds: dict[str, KindFigures] = Field(default_factory=dict)
    correct: int = 0
    false_rejections: int = 0
    false_rejection_rate: float | None = None
    recall: float | None = None
    precision: float | None = None
    model: str | None = None
    """The served model a model-based verifier (judge, validator, log-probabilities) was measured
    with: its figures hold for that model only."""


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def score(
    name: str,
    check: str,
    cases: Iterable[Case],
    passed: dict[str, bool],
    *,
    scope: list[str],
    params: dict[str, Any] | None = None,
    what: str = "",
    model: str | None = None,
) -> VerifierFigures:
    """Figures for one verifier from its verdicts (case id → passed) on ``cases``."""
    listed = [c for c in cases if c.id in passed]
    rejected_bases = {c.id for c in listed if c.kind == CORRECT and not passed[c.id]}
    correct = [c for c in listed if c.kind == CORRECT]
    figures = VerifierFigures(
        name=name, check=check, params=params or {}, what=what, scope=scope, model=model
    )
    figures.correct = len(correct)
    figures.false_rejections = len(rejected_bases)
    figures.false_rejection_rate = _ratio(len(rejected_bases), len(correct))
    by_kind: dict[str, list[Case]] = {}
    for c in listed:
        if c.kind != CORRECT:
            by_kind.setdefault(c.kind, []).append(c)
    caught_all = cases_all = false_all = 0
    for kind, group in by_kind.items():
        caught = sum(not passed[c.id] for c in group)
        bases = {c.base for c in group}
        false = len(bases & rejected_bases)
        figures.kinds[kind] = KindFigures(
            cases=len(group),
            caught=caught,
            bases=len(bases),
            false_rejections=false,
            recall=round(caught / len(group), 4),
            precision=_ratio(caught, caught + false),
        )
        if kind in scope:
            caught_all, cases_all, false_all = caught_all + caught, cases_all + len(group), false_all + false
    figures.recall = _ratio(caught_all, cases_all)
    figures.precision = _ratio(caught_all, caught_all + false_all)
    return figures


BASE_KINDS = ["swapped_entity", "non_edge_named", "non_edge_coref", "negated_edge"]
WORDING_KINDS = ["wrong_relation", "reversed_direction", "distractor_as_fact"]

# The verifiers bench/verifiers.py measures:
# name, check, params, what it checks, the kinds it is meant to catch, which cases
BENCH: list[tuple[str, str, dict[str, Any], str, list[str], str]] = [
    (
        "kg_grounding",
        "kg_grounding",
        {},
        "each step's entities (named, or 'the disease'/'it' resolved to an earlier entity) are "
        "joined by KG edges; a denied edge is not in the KG",
        BASE_KINDS,
        "trace",
    ),
    (
        "kg_grounding (no coreference, no negation)",
        "kg_grounding",
        {"coreference": False, "negation": False},
        "the check as it was before issue 13: named entities only, denials read as claims",
        BASE_KINDS,
        "trace",
    ),
    (
        "kg_grounding check_relations",
        "kg_grounding",
        {"check_relations": True},
        "as kg_grounding, and the relation wording fits a KG edge between them, the right way round",
        BASE_KINDS + WORDING_KINDS,
        "trace",
    ),
    (
        "kg_grounding check_relations cover_path",
        "kg_grounding",
        {"check_relations": True, "cover_path": "path"},
        "as check_relations, and every hop of the item's path is stated by a step",
        [*BASE_KINDS, *WORDING_KINDS, "skipped_hop"],
        "trace",
    ),
    (
        "kg_grounding strict",
        "kg_grounding",
        {"check_relations": True, "cover_path": "path", "strict": True},
        "as cover_path, and every step states a hop of the path or the conclusion: no entity off "
        "the path (a distractor) stated as fact, no question restated as a step",
        [*BASE_KINDS, *WORDING_KINDS, "skipped_hop", "restated_question"],
        "trace",
    ),
    (
        "mcq_answer",
        "mcq_answer",
        {},
        "the answer letter is gold, and the answer line does not pair a letter with another option's text",
        ["wrong_letter"],
        "trace",
    ),
    (
        "format",
        "format",
        {"min_steps": 2},
        "numbered steps and a final answer line (not content)",
        [],
        "trace",
    ),
    (
        "question_fidelity",
        "question_fidelity",
        {},
        "the question names its anchor, uses its path's relation wording in order, asks for the "
        "answer's type, and names no relation, type or entity off the path",
        [k for k in QUESTION_KINDS if not k.startswith("leaked")],
        "question",
    ),
    (
        "leakage",
        "leakage",
        {"extra_terms_field": "intermediates", "allowed_field": "anchor"},
        "the question names neither the answer nor an intermediate entity",
        ["leaked_answer", "leaked_intermediate"],
        "question",
    ),
]
