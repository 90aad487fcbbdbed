"""What a step decided (a ``note`` event), as the op that wrote it declares (``NoteSchema.view``):
a one-line label for the trajectory tree and a readable detail; a kind no installed op declares
falls back to its raw data."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.pretty import Pretty
from rich.table import Table
from rich.text import Text

from medloom.core.events import Note
from medloom.core.notes import NoteView, Segment, note_schema


def _view(note: Note) -> NoteView | None:
    schema = note_schema(note.kind)
    return schema.view(note.data) if schema is not None else None


def _text(segments: list[Segment]) -> Text:
    return Text.assemble(*segments)


def _value(segments: list[Segment]) -> Text:
    """A fact or table cell: its first segment's style covers the whole cell (padding included)."""
    if not segments:
        return Text()
    (first, style), *rest = segments
    text = Text(first, style=style)
    for part, part_style in rest:
        text.append(part, style=part_style)
    return text


def note_label(note: Note) -> Text:
    """A one-line label: "round 2: 4 yes / 1 no — dissent: Cardiology", "resample C, A → gold A ✓"."""
    view = _view(note)
    return _text(view.label) if view is not None else Text.assemble(("note ", "bold"), note.kind)


def _head(note: Note, title: str) -> Text:
    text = Text(title, style="bold")
    text.append(f"  at {note.node}" if note.node else "")
    if note.trace_id:
        text.append(f"\ntrace {note.trace_id}", style="dim")
    return text


def render_note(note: Note) -> RenderableType:
    """The detail of a note, laid out as its op declares."""
    view = _view(note)
    if view is None:
        return Group(_head(note, f"note: {note.kind}"), Pretty(note.data))
    parts: list[RenderableType] = [_head(note, view.title)]
    if view.label_first:
        parts.append(_text(view.label))
    if view.facts:
        facts = Table.grid(padding=(0, 1))
        facts.add_column(style="bold")
        facts.add_column()
        for name, value in view.facts:
            facts.add_row(name, _value(value))
        parts.append(facts)
    if view.table is not None:
        columns, rows = view.table
        table = Table(header_style="bold", box=None, pad_edge=False)
        for name in columns:
            table.add_column(name)
        for row in rows:
            table.add_row(*(_value(cell) for cell in row))
        parts.append(table)
    if view.lines:
        lines = Text()
        for line in view.lines:
            lines.append_text(_text(line))
            lines.append("\n")
        parts.append(lines)
    return Group(*parts)
