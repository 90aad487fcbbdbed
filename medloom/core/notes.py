"""What an op's notes mean: each op declares, per note kind it writes, what the report counts,
what it lists, and how the viewer shows a note, so neither the report nor the viewer knows
note kinds by name.

Register a schema with ``@register_note("kind")`` in the op's module. Styles are rich style
names; the viewer turns segments into text, so this layer has no display dependency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from medloom.core.registry import REGISTRY, UnknownName

Segment = tuple[str, str]
"""A run of text and its style ("" for none)."""


@dataclass
class NoteView:
    """How the viewer shows one note."""

    title: str
    """The heading of its detail ("vote round 2")."""
    label: list[Segment]
    """The one-line label in the trajectory tree."""
    facts: list[tuple[str, list[Segment]]] = field(default_factory=list)
    """Name → value lines of the detail."""
    table: tuple[list[str], list[list[list[Segment]]]] | None = None
    """A table under the facts: column names and rows of cells."""
    lines: list[list[Segment]] = field(default_factory=list)
    """Free lines at the end of the detail."""
    label_first: bool = False
    """Show the label again between the heading and the facts."""


@dataclass(frozen=True)
class ListingColumn:
    key: str
    """A key of the listed record (``item_id``, ``trace_id`` or a key of the note's data)."""
    card: str
    """Its header in the dataset card (empty: not shown there)."""
    stats: str = ""
    """Its header in ``medloom stats`` (empty: not shown there)."""
    percent: bool = False


@dataclass(frozen=True)
class NoteListing:
    """Notes of a kind the report keeps one by one (e.g. what decontamination removed)."""

    stats_title: str
    card_heading: str
    card_intro: str
    """A sentence before the card's table; ``{n}`` is the number of records."""
    columns: tuple[ListingColumn, ...]


class NoteSchema:
    """The meaning of one note kind; subclass per kind an op writes."""

    listing: NoteListing | None = None

    def facets(self, data: dict[str, Any]) -> dict[str, int]:
        """What one note counts towards in the report (``{"matched": 1, "tries": 3}``)."""
        return {}

    def view(self, data: dict[str, Any]) -> NoteView | None:
        """How the viewer shows a note (None: its raw data)."""
        return None


S = TypeVar("S", bound=type[NoteSchema])


def register_note(kind: str) -> Callable[[S], S]:
    """Class decorator in an op's module: ``kind`` notes mean what this schema says."""

    def wrap(cls: S) -> S:
        REGISTRY.add("note", kind, cls())
        return cls

    return wrap


def note_schema(kind: str) -> NoteSchema | None:
    """The registered schema of ``kind`` (None for kinds no installed op declares)."""
    try:
        schema: NoteSchema = REGISTRY.get("note", kind)
    except UnknownName:
        return None
    return schema


def facets_text(facets: dict[str, int]) -> str:
    """``matched 1, no match 1, tries 5`` (for the stats table and the card)."""
    return ", ".join(f"{name} {count}" for name, count in facets.items() if count)


def percent(value: object) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) else "–"


def listing_cell(record: dict[str, Any], column: ListingColumn) -> str:
    value = record.get(column.key)
    if column.percent:
        return percent(value)
    if column.key == "trace_id":
        return str(value or "–")
    return str(value if value is not None else "")
