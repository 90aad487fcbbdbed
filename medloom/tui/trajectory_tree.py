"""An item's trajectory as a tree: node → refinement round → calls, traces, verdicts, revisions."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual.widgets import Tree

from medloom.core.events import (
    Event,
    ItemFinished,
    ItemStarted,
    LLMCall,
    Note,
    Selection,
    TraceCreated,
    TraceDropped,
    TraceRevised,
    VerdictGiven,
)
from medloom.tui.note_view import note_label


@dataclass
class Step:
    """One (node, round) stage of the item's path through the graph."""

    node: str
    round: int
    events: list[Event] = field(default_factory=list)


def group_events(events: list[Event]) -> list[Step]:
    """Events grouped by node and refinement round, in order of first appearance.

    An LLM call has no round of its own: it joins the round of the next event its node emits. A note
    (what a step decided) joins the round its node is in, so a vote round stays beside its revision.
    """
    rounds: dict[str, int] = {}
    node_round: dict[str, int] = {}
    steps: dict[tuple[str, int], Step] = {}
    pending: dict[str, list[Event]] = {}

    def put(node: str, rnd: int, event: Event) -> None:
        step = steps.setdefault((node, rnd), Step(node, rnd))
        step.events.extend(pending.pop(node, []))
        step.events.append(event)
        node_round[node] = rnd

    for event in events:
        if isinstance(event, ItemStarted | ItemFinished):
            continue
        node = event.node or "?"
        if isinstance(event, LLMCall):
            pending.setdefault(node, []).append(event)
            continue
        if isinstance(event, TraceCreated):
            rnd = rounds[event.trace.id] = event.trace.round
        elif isinstance(event, VerdictGiven | TraceDropped):
            rnd = rounds.get(event.trace_id, 0)
        elif isinstance(event, TraceRevised):
            rnd = rounds[event.new_trace_id] = event.revision.round
        elif isinstance(event, Note):
            rnd = node_round.get(node, 0)
        else:
            rnd = 0
        put(node, rnd, event)
    for node, calls in pending.items():
        steps.setdefault((node, 0), Step(node, 0)).events.extend(calls)
    return list(steps.values())


def _short(trace_id: str, item_id: str) -> str:
    """The distinctive tail of a trace id ("t0.7/0+r1" of "item/generate/gen/t0.7/0+r1")."""
    parts = trace_id.removeprefix(item_id + "/").split("/")
    return "/".join(parts[-2:])


def event_label(event: Event) -> Text:
    """A one-line label for an event in the tree."""
    item = event.item_id
    if isinstance(event, LLMCall):
        resp = event.response
        if resp is None:
            return Text.assemble(("call ", "bold"), ("error", "red"))
        cache = " cached" if resp.cache_hit else ""
        return Text.assemble(
            ("call ", "bold"),
            (f"{resp.usage.prompt_tokens}+{resp.usage.completion_tokens} tok {resp.latency_s:.2f}s", "dim"),
            (cache, "cyan"),
        )
    if isinstance(event, TraceCreated):
        return Text.assemble(("trace ", "bold"), _short(event.trace.id, item), f" → {event.trace.answer}")
    if isinstance(event, VerdictGiven):
        mark = ("✓ pass", "green") if event.verdict.passed else ("✗ fail", "red")
        flags = f" ⚑{len(event.verdict.step_flags)}" if event.verdict.step_flags else ""
        return Text.assemble(mark, f" {_short(event.trace_id, item)}", (flags, "yellow"))
    if isinstance(event, TraceRevised):
        return Text.assemble(("revision ", "bold magenta"), _short(event.new_trace_id, item))
    if isinstance(event, TraceDropped):
        return Text.assemble(("dropped ", "red"), _short(event.trace_id, item))
    if isinstance(event, Selection):
        return Text.assemble(("selected ", "bold green"), ", ".join(_short(s, item) for s in event.selected))
    if isinstance(event, Note):
        return note_label(event)
    return Text(event.type)


class TrajectoryTree(Tree[Event]):
    """The tree of one item; each leaf's data is its event."""

    def show_item(self, item_id: str, status: str, events: list[Event]) -> None:
        self.clear()
        self.root.set_label(Text.assemble((item_id, "bold"), f"  {status}"))
        self.root.data = next((e for e in events if isinstance(e, ItemStarted)), None)
        kept = {row.get("trace_id") for e in events if isinstance(e, ItemFinished) for row in e.rows}
        for step in group_events(events):
            label = step.node if step.round == 0 else f"{step.node} · round {step.round}"
            branch = self.root.add(Text(label, style="bold"), expand=True)
            for event in step.events:
                text = event_label(event)
                if isinstance(event, TraceCreated) and event.trace.id in kept:
                    text.append(" ★ kept", style="bold green")
                branch.add_leaf(text, data=event)
        ends = [e for e in events if isinstance(e, ItemFinished)]
        if ends:
            self.root.add_leaf(Text(f"end: {ends[-1].status}", style="bold"), data=ends[-1])
        self.root.expand()
