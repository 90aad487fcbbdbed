"""One item: its trajectory tree on the left, the selected event's detail on the right."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.pretty import Pretty
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static, Tree

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
from medloom.core.records import Trace, Verdict
from medloom.tui.call_detail import render_call
from medloom.tui.diff_view import render_revision
from medloom.tui.index import TrajectoryIndex
from medloom.tui.note_view import render_note
from medloom.tui.trajectory_tree import TrajectoryTree
from medloom.tui.verdict_view import render_trace, render_verdict


def node_table(event: ItemFinished) -> Table:
    """What each node did for this item: traces in and out, verdicts, calls and tokens."""
    table = Table(title="per node", title_justify="left", header_style="bold", box=None)
    for name in ("node", "in", "out", "pass", "fail", "drop", "calls", "tokens"):
        table.add_column(name, justify="left" if name == "node" else "right")
    for node, st in event.stats.items():
        table.add_row(
            node,
            *map(str, (st.traces_in, st.traces_out, st.passed, st.failed, st.dropped, st.calls)),
            str(st.prompt_tokens + st.completion_tokens),
        )
    return table


class ItemScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "app.pop_screen", "back"),
        Binding("d", "next('revision')", "next diff"),
        Binding("f", "next('flag')", "next flagged verdict"),
    ]
    DEFAULT_CSS = """
    ItemScreen TrajectoryTree { width: 36; border-right: solid $primary; }
    ItemScreen #detail-scroll { width: 1fr; padding: 0 1; }
    """

    def __init__(self, index: TrajectoryIndex, item_id: str) -> None:
        super().__init__()
        self.index = index
        self.item_id = item_id
        self.events: list[Event] = []
        self.traces: dict[str, Trace] = {}
        self.verdicts: dict[str, list[Verdict]] = {}
        self._load()

    def _load(self) -> None:
        self.events = [e for _, e in self.index.events(self.item_id)]
        self.traces, self.verdicts = {}, {}
        for event in self.events:
            if isinstance(event, TraceCreated):
                self.traces[event.trace.id] = event.trace
            elif isinstance(event, VerdictGiven):
                self.verdicts.setdefault(event.trace_id, []).append(event.verdict)

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield TrajectoryTree(self.item_id, id="tree")
            with VerticalScroll(id="detail-scroll"):
                yield Static(id="detail")
        yield Footer()

    def on_mount(self) -> None:
        tree = self.query_one(TrajectoryTree)
        tree.show_item(self.item_id, self.index.by_id[self.item_id].status, self.events)
        tree.focus()
        self.show(tree.root.data)

    def reload_if_grown(self) -> None:
        """On a live run: redraw the tree when the item has new events, keeping the cursor line."""
        if self.index.by_id[self.item_id].events == len(self.events):
            return
        self._load()
        tree = self.query_one(TrajectoryTree)
        line = tree.cursor_line
        tree.show_item(self.item_id, self.index.by_id[self.item_id].status, self.events)
        tree.cursor_line = line

    def on_tree_node_highlighted(self, message: Tree.NodeHighlighted[Event]) -> None:
        node, tree = message.node, self.query_one(TrajectoryTree)
        if node.parent is None and node is not tree.root:
            return  # the root the tree had before show_item replaced it
        if node.data is None and node is not tree.root:
            self.query_one("#detail", Static).update(
                Text.assemble(node.label, f"\n{len(node.children)} event(s)")
            )
            return
        self.show(node.data)

    def show(self, event: Event | None) -> None:
        self.query_one("#detail", Static).update(self.detail(event))
        self.query_one("#detail-scroll", VerticalScroll).scroll_home(animate=False)

    def detail(self, event: Event | None) -> RenderableType:
        if event is None:
            entry = self.index.by_id[self.item_id]
            return Text(f"{self.item_id}: {entry.status} ({entry.events} events so far)")
        if isinstance(event, ItemStarted):
            return self.item_summary(event)
        if isinstance(event, LLMCall):
            return render_call(event)
        if isinstance(event, TraceCreated):
            return render_trace(event.trace, self.verdicts.get(event.trace.id, []))
        if isinstance(event, VerdictGiven):
            return render_verdict(event.verdict, self.traces.get(event.trace_id))
        if isinstance(event, TraceRevised):
            return render_revision(event)
        if isinstance(event, TraceDropped):
            return Text.assemble(("dropped ", "bold red"), event.trace_id, "\n", event.reason)
        if isinstance(event, Note):
            return render_note(event)
        if isinstance(event, Selection):
            return Pretty(event.model_dump(include={"method", "selected", "candidates", "detail"}))
        if isinstance(event, ItemFinished):
            text = Text.assemble(("status ", "bold"), event.status, "\n")
            if event.node:
                text.append(f"at node {event.node}\n")
            if event.reason:
                text.append(event.reason + "\n", style="yellow")
            text.append(f"{len(event.rows)} row(s), {event.wall_s:.2f} s\n")
            for row in event.rows:
                text.append(
                    f"• {row.get('trace_id')}: answer {row.get('predicted')} score {row.get('score')}\n"
                )
            return Group(text, node_table(event))
        return Pretty(event.model_dump())

    def item_summary(self, event: ItemStarted) -> RenderableType:
        """The item's input (question, options, gold) and how it ended."""
        entry = self.index.by_id[self.item_id]
        data = event.input
        text = Text()
        text.append(f"{self.item_id}", style="bold")
        text.append(f"  #{event.index}  {entry.status}", style="bold")
        if entry.node:
            text.append(f" at {entry.node}")
        text.append("\n")
        if entry.reason:
            text.append(entry.reason + "\n", style="yellow")
        text.append("\n")
        for key, value in data.items():
            if isinstance(value, dict):
                text.append(f"{key}:\n", style="bold")
                for k, v in value.items():
                    text.append(f"  {k}) {v}\n")
            else:
                text.append(f"{key}: ", style="bold")
                text.append(f"{value}\n")
        return text

    def action_next(self, kind: str) -> None:
        """Move the tree cursor to the next revision, or the next verdict with step flags."""
        tree = self.query_one(TrajectoryTree)
        start = tree.cursor_line
        for line in list(range(start + 1, tree.last_line + 1)) + list(range(0, start + 1)):
            node = tree.get_node_at_line(line)
            event = node.data if node is not None else None
            if (kind == "revision" and isinstance(event, TraceRevised)) or (
                kind == "flag" and isinstance(event, VerdictGiven) and event.verdict.step_flags
            ):
                tree.move_cursor(node)
                return
        self.notify(f"no {'revision' if kind == 'revision' else 'flagged verdict'} in this item")
