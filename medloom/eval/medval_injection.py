"""Labelled cases for measuring the MedVAL validator: each demo row's clean output, and copies
with exactly one injected error of a known type (hallucination, omission, certainty
misalignment). Every injected case keeps the id of its clean case (``base``), as in
:mod:`medloom.eval.injection`, so :func:`medloom.eval.verifier_bench.score` gives its precision.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from medloom.core.records import Item, Trace
from medloom.eval.injection import CORRECT, Case

MEDVAL_KINDS = ["hallucination", "omission", "certainty_misalignment"]

FABRICATED = {
    "medication2answer": "It is also safe to double the dose if symptoms persist.",
    "query2question": "Should they also stop their insulin?",
    "report2impression": "New 2 cm liver lesion, suspicious for metastasis.",
    "report2simplified": "The scan also shows a small tumour in your liver.",
}
"""A claim no demo input supports, per task (added as the output's last sentence)."""

OVERSTATED: list[tuple[str, str]] = [
    (r"\bpossibly\b", "definitely"),
    (r"\blikely\b", "certainly"),
    (r"\bmay\b", "will"),
    (r"\busually\b", "always"),
    (r"\bmild\b", "severe"),
    (r"\bsmall\b", "large"),
    (r"\bmoderate\b", "severe"),
    (r"\breassuring\b", "worrying"),
    (r"\bconsistent with\b", "possibly"),
    (r"\bAvoid\b", "You may have a little"),
    (r"\bDo not stop\b", "Stop"),
]
"""Wording made more (or less) certain, urgent or severe than the input allows; first match wins."""

_SENTENCE = re.compile(r"(?<=[.?!])\s+")


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text.strip()) if s]


def hallucinated(task: str, output: str) -> str | None:
    claim = FABRICATED.get(task)
    if claim is None:
        return None
    if task == "query2question":  # one question: fold the fabricated worry into it
        return output.rstrip("?") + ", and should they stop their insulin?"
    return f"{output.rstrip()} {claim}"


def omitted(output: str) -> str | None:
    """The output without its longest sentence (None for a one-sentence output)."""
    parts = _sentences(output)
    if len(parts) < 2:
        return None
    longest = max(range(len(parts)), key=lambda i: len(parts[i]))
    return " ".join(p for i, p in enumerate(parts) if i != longest)


def overstated(output: str) -> str | None:
    for pattern, replacement in OVERSTATED:
        changed, n = re.subn(pattern, replacement, output, count=1)
        if n:
            return changed
    return None


def medval_cases(rows: Iterable[Mapping[str, Any]]) -> list[Case]:
    """A clean case per row (``id``, ``task``, ``input``, ``reference``) and one case per error
    type that applies to it."""
    out: list[Case] = []
    for row in rows:
        item = Item(id=str(row["id"]), index=len(out), question=str(row["input"]), data={"task": row["task"]})
        clean = str(row["reference"])
        variants: dict[str, str | None] = {
            CORRECT: clean,
            "hallucination": hallucinated(str(row["task"]), clean),
            "omission": omitted(clean),
            "certainty_misalignment": overstated(clean),
        }
        base = f"{item.id}/clean"
        for kind, text in variants.items():
            if text is None:
                continue
            case_id = base if kind == CORRECT else f"{item.id}/{kind}"
            trace = Trace(id=case_id, item_id=item.id, node="bench", text=text)
            out.append(
                Case(id=case_id, base=base, kind=kind, variant=kind, kg="medval-demo", item=item, trace=trace)
            )
    return out
