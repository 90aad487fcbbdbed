"""The recipe's ``resources.kg``: which knowledge graph a run uses."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

KGFormat = Literal["auto", "hetionet", "primekg", "triples"]


class KGSpec(BaseModel):
    """``source`` is ``demo`` (the bundled graph), a path, or several paths merged into one graph.

    ``format`` is detected from the path when ``auto``: a directory with ``nodes.tsv`` or
    ``edges/`` is Hetionet, a CSV whose header has ``x_name`` is PrimeKG, anything else is a
    triples file (``head, relation, tail`` plus optional ``head_type, tail_type, head_id, tail_id``).
    Relative paths are resolved beside the recipe file, then from the working directory.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str | tuple[str, ...] = "demo"
    format: KGFormat = "auto"
    max_problems: int = Field(default=20, ge=0)
    """How many malformed rows are listed in the load report (all are counted)."""

    @field_validator("source", mode="before")
    @classmethod
    def _paths(cls, value: object) -> object:
        if isinstance(value, list):
            return tuple(str(v) for v in value)
        return value

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,) if isinstance(self.source, str) else self.source


class KGResources(Protocol):
    """What uses a knowledge graph reads of the recipe's ``resources:`` (its ``kg``)."""

    @property
    def kg(self) -> KGSpec | None: ...
