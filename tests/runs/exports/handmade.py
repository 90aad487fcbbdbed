"""Write a run's trajectories by hand, so a test knows every step flag and verdict behind an export."""

from __future__ import annotations

from pathlib import Path

from medloom.core.events import Event, ItemFinished, ItemStarted, Note, TraceCreated, VerdictGiven
from medloom.core.records import Item, Step, Trace, Verdict
from medloom.core.rows import trace_row

ITEM = Item(
    id="q1",
    index=0,
    question="Which vector transmits malaria?",
    options={"A": "Aedes mosquito", "B": "Anopheles mosquito"},
    answer="B",
)


def trace(trace_id: str, steps: list[str], answer: str) -> Trace:
    text = "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, start=1)) + f"\nAnswer: {answer}"
    return Trace(
        id=trace_id,
        item_id=ITEM.id,
        node="gen",
        text=text,
        steps=[Step(index=i, text=s) for i, s in enumerate(steps, start=1)],
        answer=answer,
    )


def verdict(passed: bool, flags: dict[int, str] | None = None, by: str = "judge") -> Verdict:
    reason = "; ".join((flags or {}).values()) or ("ok" if passed else "wrong answer")
    return Verdict(passed=passed, step_flags=flags or {}, reasons=[reason], verifier=by, node=by)


def write_run(
    run_dir: Path,
    graded: list[tuple[Trace, list[Verdict]]],
    kept: list[str],
    notes: list[Note] = (),  # type: ignore[assignment]
    item: Item = ITEM,
) -> Path:
    """A run directory whose trajectories hold ``graded`` traces (with their verdicts), ``kept`` rows."""
    run_dir.mkdir(parents=True, exist_ok=True)
    events: list[Event] = [ItemStarted(item_id=item.id, index=item.index, input={})]
    by_id = {}
    for t, verdicts in graded:
        events.append(TraceCreated(item_id=item.id, node=t.node, trace=t))
        events += [VerdictGiven(item_id=item.id, node=v.node, trace_id=t.id, verdict=v) for v in verdicts]
        by_id[t.id] = t.model_copy(update={"verdicts": verdicts})
    events += list(notes)
    rows = [trace_row(item, by_id[t], "handmade", []) for t in kept]
    snapshot = {"question": item.question, "options": item.options, "answer": item.answer}
    status = "kept" if rows else "rejected"
    events.append(ItemFinished(item_id=item.id, status=status, rows=rows, item=snapshot))  # type: ignore[arg-type]
    with (run_dir / "trajectories.jsonl").open("a") as fh:
        for event in events:
            fh.write(event.model_dump_json(exclude_none=True) + "\n")
    return run_dir
