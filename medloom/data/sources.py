"""Where a run's items come from: a dataset (``dataset:``) or a registered source (``source:``).

A source makes items instead of reading them, e.g. chains sampled from a knowledge graph.
Register one with :func:`register_source`; it must be deterministic for a given config (a
resumed run skips the items it already finished by id). Plugins register theirs from a module
in the ``medloom.plugins`` entry-point group (see ``medloom.core.registry``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from medloom.core.errors import ConfigError
from medloom.core.records import Item
from medloom.core.registry import REGISTRY
from medloom.data.items import iter_items
from medloom.data.readers import DatasetSpec, count_rows
from medloom.kg.spec import KGResources

ItemStream = Iterable[tuple[int, Item | Exception]]


class ItemSource(Protocol):
    def count(self) -> int | None:
        """How many items it will make, when known."""
        ...

    def __iter__(self) -> Iterator[tuple[int, Item | Exception]]: ...


class SourceSpec(BaseModel):
    """A recipe's ``source:``: items made by a registered source instead of read from a dataset,
    e.g. chains sampled from a knowledge graph."""

    model_config = ConfigDict(extra="forbid")

    op: str
    params: dict[str, Any] = Field(default_factory=dict)
    limit: int | None = Field(default=None, ge=1)


class ItemsRecipe(Protocol):
    """What choosing a run's items reads of the recipe."""

    @property
    def dataset(self) -> DatasetSpec | None: ...

    @property
    def source(self) -> SourceSpec | None: ...

    @property
    def resources(self) -> KGResources: ...


SourceFactory = Callable[[SourceSpec, KGResources, Path | None], ItemSource]
"""Called with the recipe's ``source:`` (its ``params`` hold the op's settings), its
``resources:`` and its directory."""


def register_source(name: str) -> Callable[[SourceFactory], SourceFactory]:
    """Decorator: make ``name`` usable as ``source.op`` in recipes."""
    return REGISTRY.register("source", name)


def source_ops() -> dict[str, SourceFactory]:
    """Every known source (built-in, registered, and from installed plugins)."""
    return REGISTRY.all("source")


@dataclass
class _Limited:
    inner: ItemSource
    limit: int | None

    def count(self) -> int | None:
        total = self.inner.count()
        if self.limit is None:
            return total
        return self.limit if total is None else min(total, self.limit)

    def __iter__(self) -> Iterator[tuple[int, Item | Exception]]:
        return islice(iter(self.inner), self.limit)


@dataclass
class _DatasetSource:
    dataset: DatasetSpec

    def count(self) -> int | None:
        return count_rows(self.dataset)

    def __iter__(self) -> Iterator[tuple[int, Item | Exception]]:
        return iter_items(self.dataset)


def item_source(spec: ItemsRecipe, base_dir: Path | None = None) -> ItemSource:
    """The items of a run, as the recipe says."""
    if spec.source is None:
        if spec.dataset is None:
            raise ConfigError("give 'dataset' (read items) or 'source' (make items)", key="dataset")
        return _DatasetSource(spec.dataset)
    ops = source_ops()
    if spec.source.op not in ops:
        known = ", ".join(sorted(ops)) or "none installed"
        raise ConfigError(f"unknown source '{spec.source.op}' (sources: {known})", key="source.op")
    return _Limited(ops[spec.source.op](spec.source, spec.resources, base_dir), spec.source.limit)
