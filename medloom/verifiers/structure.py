"""Format and leakage checks."""

from __future__ import annotations

from medloom.core.records import Item, Trace, Verdict
from medloom.core.text import normalise
from medloom.verifiers.base import Check, register_check


@register_check("format")
class FormatCheck(Check):
    """Steps numbered 1..k within bounds, a final answer, not cut off by the token limit."""

    name = "format"

    def __init__(
        self,
        min_steps: int = 1,
        max_steps: int | None = None,
        require_answer: bool = True,
        allow_truncated: bool = False,
        min_step_chars: int = 3,
    ):
        self.min_steps = min_steps
        self.max_steps = max_steps
        self.require_answer = require_answer
        self.allow_truncated = allow_truncated
        self.min_step_chars = min_step_chars

    def check(self, item: Item, trace: Trace) -> Verdict:
        reasons: list[str] = []
        flags: dict[int, str] = {}
        count = len(trace.steps)
        if count < self.min_steps:
            reasons.append(f"{count} steps, fewer than {self.min_steps}")
        if self.max_steps is not None and count > self.max_steps:
            reasons.append(f"{count} steps, more than {self.max_steps}")
        for expected, step in enumerate(trace.steps, start=1):
            if step.index != expected:
                reasons.append(f"step numbered {step.index} where {expected} was expected")
                flags[step.index] = "out of order"
                break
        for step in trace.steps:
            if len(step.text.strip()) < self.min_step_chars:
                flags[step.index] = "empty step"
        if flags and not reasons:
            reasons.append(f"empty or misnumbered steps: {sorted(flags)}")
        if self.require_answer and trace.answer is None:
            reasons.append(f"no final answer ({trace.parse_error or 'missing'})")
        if not self.allow_truncated and trace.finish_reason == "length":
            reasons.append("output cut off at the token limit")
        return self.verdict(not reasons, reasons or ["well formed"], step_flags=flags)


@register_check("leakage")
class AnswerLeakage(Check):
    """Fails when the gold answer's text (or another listed term) appears in the question.

    ``text`` picks what is searched: the item's question, or a question the trace wrote
    (``trace.meta['question']``), as in synthesised QA. ``allowed_field`` names an ``item.data``
    field whose names the question may contain (the anchor of a KG question): they are removed
    before searching, so an intermediate "cornea" is not found inside "substantia propria of cornea".
    """

    name = "leakage"

    def __init__(
        self,
        text: str = "question",
        extra_terms_field: str | None = None,
        min_chars: int = 3,
        allowed_field: str | None = None,
    ):
        self.text = text
        self.extra_terms_field = extra_terms_field
        self.min_chars = min_chars
        self.allowed_field = allowed_field

    def check(self, item: Item, trace: Trace) -> Verdict:
        question = str(trace.meta.get("question", "")) if self.text == "trace" else item.question
        terms: list[str] = []
        if item.gold_text:
            terms.append(item.gold_text)
        if self.extra_terms_field:
            extra = item.data.get(self.extra_terms_field) or []
            terms.extend(str(t) for t in (extra if isinstance(extra, list) else [extra]))
        haystack = f" {normalise(question)} "
        allowed = item.data.get(self.allowed_field) if self.allowed_field else None
        for name in allowed if isinstance(allowed, list) else [allowed] if allowed else []:
            haystack = haystack.replace(f" {normalise(str(name))} ", " | ")
        leaked = [t for t in terms if len(normalise(t)) >= self.min_chars and f" {normalise(t)} " in haystack]
        if leaked:
            return self.verdict(False, [f"the question names {', '.join(repr(t) for t in leaked)}"])
        return self.verdict(True, ["no answer terms in the question"])
