"""A solver's predictions, gathered in the run's one fold over its log (a :class:`FoldPart`).

The part sees every ``llm_call``, ``embedding_call``, ``trace`` and ``item_end`` of the run (all
sessions, after a resume) while the run's end folds its report, so predictions cost no second
read of the trajectory.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from medloom.core.events import EmbeddingCall, Event, ItemFinished, LLMCall, TraceCreated
from medloom.core.records import Item, Trace
from medloom.core.usage import Price, UsageTally
from medloom.eval.records import Prediction
from medloom.runs.rundir import RunDir
from medloom.runs.stats import RunStats, run_prices
from medloom.runs.store import iter_events

DETAIL_COLUMNS = ("votes", "agreement", "fewshot_ids")
"""Output columns copied into predictions when a solver's rows have them (medprompt's)."""


def row_vote(rows: list[dict[str, Any]]) -> tuple[str | None, dict[str, int]]:
    """The answer of a solver that kept several rows for an item: the most common ``predicted``
    (self-consistency); a tie goes to the answer of the earliest row."""
    answers = [str(r["predicted"]) for r in rows if r.get("predicted")]
    counts = Counter(answers)
    if not counts:
        return None, {}
    top = max(counts.values())
    return next(a for a in answers if counts[a] == top), dict(sorted(counts.items()))


class PredictionPart:
    """Collects, per item, its last outcome, its last trace and what its LLM and embedding calls
    used (tokens, cost); :meth:`predictions` then gives one prediction per benchmark item."""

    types = frozenset({"llm_call", "embedding_call", "item_end", "trace"})

    def __init__(self, prices: dict[str, Price] | None = None):
        self.prices: dict[str, Price] = prices or {}
        """The run's ``llm.prices`` (the eval sets them from the run's config snapshot)."""
        self.ends: dict[str, ItemFinished] = {}
        self.usage: dict[str, UsageTally] = defaultdict(UsageTally)
        self.last_trace: dict[str, Trace] = {}

    def add(self, offset: int, event: Event) -> None:
        if isinstance(event, ItemFinished):
            self.ends[event.item_id] = event  # a retried item's last outcome counts
        elif isinstance(event, TraceCreated):
            self.last_trace[event.item_id] = event.trace
        elif isinstance(event, LLMCall):
            self.usage[event.item_id].add(event.response, self.prices.get(event.request.model))
        elif isinstance(event, EmbeddingCall):
            self.usage[event.item_id].add(event.response, self.prices.get(event.model))

    def finish(self, stats: RunStats) -> None:
        """Nothing to add to the run's statistics."""

    def predictions(self, solver: str, items: list[Item]) -> list[Prediction]:
        """One prediction per benchmark item (``missing`` for an item the run never finished)."""
        return [self._prediction(solver, item) for item in items]

    def _prediction(self, solver: str, item: Item) -> Prediction:
        end = self.ends.get(item.id)
        rows = end.rows if end is not None and end.status == "kept" else []
        predicted, votes = row_vote(rows)
        row = next((r for r in rows if r.get("predicted") == predicted), rows[0] if rows else {})
        fallback = None
        if end is not None and end.status == "rejected" and item.id in self.last_trace:
            # Rejected after answering (e.g. by a recipe's own final gold check): the solver's
            # answer is still its last trace's.
            fallback = self.last_trace[item.id]
            predicted = fallback.answer
        spent = self.usage.get(item.id, UsageTally())
        detail = {k: _text(v) for k, v in row.items() if k in DETAIL_COLUMNS and v is not None}
        if len(rows) > 1:
            detail["row_votes"] = json.dumps(votes)
        if fallback is not None and end is not None:
            detail["answer_from"] = f"last trace {fallback.id} (item rejected at {end.node or '?'})"
        return Prediction(
            solver=solver,
            item_id=item.id,
            index=item.index,
            gold=item.answer,
            predicted=predicted,
            correct=predicted is not None and predicted == item.answer,
            status=end.status if end is not None else "missing",
            reason=end.reason if end is not None else "the run did not finish this item",
            prompt_tokens=spent.prompt_tokens,
            completion_tokens=spent.completion_tokens,
            cost=round(spent.cost, 8),
            wall_s=end.wall_s if end is not None else 0.0,
            calls=spent.calls,
            detail=detail,
        )


def read_predictions(run_dir: Path, solver: str, items: list[Item]) -> list[Prediction]:
    """The predictions of a run that has already ended (e.g. MedFuzz's re-scoring): one pass over
    only the events :class:`PredictionPart` reads. Runs this eval starts gather them in their own
    final fold instead."""
    part = PredictionPart(run_prices(RunDir(run_dir)))
    for offset, event in iter_events(RunDir(run_dir).trajectories, set(part.types)):
        part.add(offset, event)
    return part.predictions(solver, items)


def _text(value: object) -> str:
    """A detail value as text: structured values (votes, ids) as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
