"""Verifiers: deterministic checks, LLM judges and composites. All return a Verdict."""

from medloom.verifiers.base import Check
from medloom.verifiers.composite import Composite
from medloom.verifiers.kg_grounding import KGGrounding
from medloom.verifiers.llm_judge import LLMJudge, parse_judge
from medloom.verifiers.match import McqAnswerMatch, NumericMatch, StringMatch
from medloom.verifiers.question_fidelity import QuestionFidelity
from medloom.verifiers.structure import AnswerLeakage, FormatCheck

CHECKS: dict[str, type[Check]] = {
    "mcq_answer": McqAnswerMatch,
    "string_match": StringMatch,
    "numeric_match": NumericMatch,
    "format": FormatCheck,
    "leakage": AnswerLeakage,
    "kg_grounding": KGGrounding,
    "question_fidelity": QuestionFidelity,
}

__all__ = [
    "CHECKS",
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
]
