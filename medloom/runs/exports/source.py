"""What the training exports read from a run: per item, its prompt, its traces with their verdicts,
which traces were kept, and any preference pairs an op recorded. One pass over the trajectories."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medloom.core.events import PREFERENCE_PAIR, ItemFinished, ItemStarted, Note, TraceCreated, VerdictGiven
from medloom.core.records import Step, Trace, Verdict
from medloom.runs.store import final_items, iter_events


@dataclass
class ExportItem:
    """One finished item as the exports see it."""

    item_id: str
    status: str
    question: str | None = None
    options: dict[str, str] | None = None
    answer: str | None = None
    traces: dict[str, Trace] = field(default_factory=dict)
    """Every trace of the item's last attempt by id, with all the verdicts it received."""
    kept: list[str] = field(default_factory=list)
    """Ids of the kept traces, in row order."""
    pairs: list[dict[str, Any]] = field(default_factory=list)
    """Preference pairs recorded by ops (the ``data`` of ``preference_pair`` notes)."""

    def failed(self, trace: Trace) -> list[Verdict]:
        """The verdicts this trace failed."""
        return [v for v in trace.verdicts if not v.passed]


def _prompt_fields(item: ExportItem, rows: list[dict[str, Any]], snapshot: dict[str, Any] | None) -> None:
    if rows:
        row = rows[0]
        item.question = row.get("question")
        item.options = {o["key"]: o["text"] for o in row.get("options") or []} or None
        item.answer = row.get("answer")
    elif snapshot:
        item.question = snapshot.get("question")
        item.options = snapshot.get("options")
        item.answer = snapshot.get("answer")


def _row_trace(item_id: str, row: dict[str, Any]) -> Trace:
    """A kept trace rebuilt from its row (for ops that made it without a ``trace`` event)."""
    return Trace(
        id=str(row["trace_id"]),
        item_id=item_id,
        node="",
        model=row.get("model"),
        text=row.get("reasoning") or "",
        steps=[Step(index=i, text=t) for i, t in enumerate(row.get("steps") or [], start=1)],
        answer=row.get("predicted"),
    )


def read_items(trajectories: Path) -> list[ExportItem]:
    """Every finished item (its last outcome and the events of that attempt), in input order.

    Items whose question was not recorded (runs made before ``item_end`` carried the item, and
    no kept row) keep ``question=None``; the exports skip them and say so in the card."""
    finals = {item_id: event for item_id, (_, event) in final_items(trajectories).items()}
    items: dict[str, ExportItem] = {}
    order: dict[str, int] = {}
    for _, event in iter_events(trajectories):
        end = finals.get(event.item_id)
        if end is None or event.attempt != end.attempt:
            continue
        item = items.setdefault(event.item_id, ExportItem(event.item_id, end.status))
        if isinstance(event, ItemStarted):
            order[event.item_id] = event.index
        elif isinstance(event, TraceCreated):
            item.traces[event.trace.id] = event.trace.model_copy(update={"verdicts": []})
        elif isinstance(event, VerdictGiven) and event.trace_id in item.traces:
            trace = item.traces[event.trace_id]
            trace.verdicts.append(event.verdict)
        elif isinstance(event, Note) and event.kind == PREFERENCE_PAIR:
            item.pairs.append(event.data)
        elif isinstance(event, ItemFinished):
            _prompt_fields(item, event.rows, event.item)
            item.kept = [str(r["trace_id"]) for r in event.rows if r.get("trace_id")]
            for row in event.rows:
                if row.get("trace_id") and row["trace_id"] not in item.traces:
                    item.traces[row["trace_id"]] = _row_trace(item.item_id, row)
    return sorted(items.values(), key=lambda it: (order.get(it.item_id, 0), it.item_id))
