"""An item's trajectory as a tree: node → refinement round → calls, traces, verdicts, revisions."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from medloom.core.events import (
    AgentTurn,
    Event,
    ItemFinished,
    ItemStarted,
    LLMCall,
    Note,
    Selection,
    ToolCalled,
    ToolReturned,
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
    if isinstance(event, AgentTurn):
        said = " ".join(event.content.split())[:60]
        answer = ("", "") if event.answer is None else (f" → answer {event.answer[:40]}", "bold green")
        return Text.assemble((f"turn {event.turn} ", "bold"), (said, "dim"), answer)
    if isinstance(event, ToolCalled):
        return Text.assemble(("⚙ ", "cyan"), (event.call.name or "(invalid call)", "bold cyan"),
                             f"({_clip(event.call.arguments, 50)})")  # fmt: skip
    if isinstance(event, ToolReturned):
        mark = ("✗ ", "red") if event.error else ("↳ ", "green")
        return Text.assemble(mark, _clip(event.content, 70))
    return Text(event.type)


def _clip(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


AGENT_EVENTS = (AgentTurn, ToolCalled, ToolReturned)


class _Conversations:
    """A tool-using agent's events under its node: one folded branch per conversation (trace),
    each tool call folded with its result beneath it."""

    def __init__(self, branch: TreeNode[Event], item_id: str):
        self.branch, self.item_id = branch, item_id
        self.conversations: dict[str, TreeNode[Event]] = {}
        self.calls: dict[str, TreeNode[Event]] = {}

    def add(self, event: AgentTurn | ToolCalled | ToolReturned) -> None:
        conversation = self.conversations.get(event.trace_id)
        if conversation is None:
            label = Text.assemble(("conversation ", "bold"), _short(event.trace_id, self.item_id))
            conversation = self.conversations[event.trace_id] = self.branch.add(label, expand=False)
        if isinstance(event, ToolCalled):
            self.calls[event.call.id] = conversation.add(event_label(event), data=event, expand=False)
        elif isinstance(event, ToolReturned) and event.call_id in self.calls:
            self.calls[event.call_id].add_leaf(event_label(event), data=event)
        else:
            conversation.add_leaf(event_label(event), data=event)


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
            conversations = _Conversations(branch, item_id)
            for event in step.events:
                if isinstance(event, AGENT_EVENTS):
                    conversations.add(event)
                    continue
                text = event_label(event)
                if isinstance(event, TraceCreated) and event.trace.id in kept:
                    text.append(" ★ kept", style="bold green")
                branch.add_leaf(text, data=event)
        ends = [e for e in events if isinstance(e, ItemFinished)]
        if ends:
            self.root.add_leaf(Text(f"end: {ends[-1].status}", style="bold"), data=ends[-1])
        self.root.expand()
