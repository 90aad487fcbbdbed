"""Per-item fan-in: top-k by score, majority vote, first passing, or all."""

from __future__ import annotations

from collections import Counter
from typing import Any

from medloom.core.records import Trace
from medloom.graphs.spec import SelectorNode


def _rank_key(trace: Trace) -> tuple[float, int, int, str]:
    """Higher score first, then passing, then fewer refinement rounds, then a stable id order."""
    verdict = trace.last_verdict
    score = trace.score if trace.score is not None else float("-inf")
    return (-score, 0 if verdict and verdict.passed else 1, trace.round, trace.id)


def select(node: SelectorNode, traces: list[Trace]) -> tuple[list[Trace], dict[str, Any]]:
    """The traces kept and a note on how (for the trajectory)."""
    if node.method == "all":
        return list(traces), {}
    if node.method == "first_passing":
        ordered = sorted(traces, key=lambda t: (t.round, t.id))
        for trace in ordered:
            if trace.last_verdict is not None and trace.last_verdict.passed:
                return [trace], {}
        return [], {"reason": "no trace passed"}
    if node.method == "top_k":
        ranked = sorted(traces, key=_rank_key)
        return ranked[: node.k], {"scores": {t.id: t.score for t in ranked}}
    # Majority vote over answers; ties go to the answer with the best-ranked trace, then by answer.
    answers = Counter(t.answer for t in traces if t.answer is not None)
    if not answers:
        return [], {"reason": "no trace has an answer to vote with"}
    best_rank = {a: min(_rank_key(t) for t in traces if t.answer == a) for a in answers}
    top = max(answers.values())
    tied = sorted((a for a, c in answers.items() if c == top), key=lambda a: (best_rank[a], a))
    winner = tied[0]
    chosen = sorted((t for t in traces if t.answer == winner), key=_rank_key)[: node.k]
    return chosen, {"votes": dict(answers), "winner": winner, "tied": tied if len(tied) > 1 else []}
