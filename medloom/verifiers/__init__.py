"""Verifiers: deterministic checks, LLM judges and composites. All return a Verdict.

Each check registers itself by name (``@register_check``) in the one registry."""

from medloom.verifiers.base import Check, register_check, registered_checks
from medloom.verifiers.composite import Composite
from medloom.verifiers.kg_grounding import KGGrounding
from medloom.verifiers.llm_judge import LLMJudge, parse_judge
from medloom.verifiers.match import McqAnswerMatch, NumericMatch, StringMatch
from medloom.verifiers.question_fidelity import QuestionFidelity
from medloom.verifiers.structure import AnswerLeakage, FormatCheck

__all__ = [
    "AnswerLeakage",
    "Check",
    "Composite",
    "FormatCheck",
    "KGGrounding",
    "LLMJudge",
    "McqAnswerMatch",
    "NumericMatch",
    "QuestionFidelity",
    "StringMatch",
    "parse_judge",
    "register_check",
    "registered_checks",
]
