"""Resolve a recipe's ``kg:`` block to a loaded graph, once per process."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from medloom.core.errors import ConfigError
from medloom.kg.loaders import LoadReport, load_into
from medloom.kg.lookup import EntityIndex
from medloom.kg.model import KnowledgeGraph
from medloom.kg.spec import KGFormat, KGSpec

log = logging.getLogger("medloom.kg")

DEMO_KG = Path(__file__).parent / "data" / "demo_kg.tsv"
"""The bundled demo graph (a Hetionet subset, CC0; see medloom/kg/data/NOTICE.md)."""


@dataclass
class LoadedKG:
    kg: KnowledgeGraph
    report: LoadReport

    @cached_property
    def index(self) -> EntityIndex:
        return EntityIndex(self.kg)


def resolve_source(source: str, base_dir: Path | None = None) -> Path:
    """``demo`` → the bundled file; a relative path beside the recipe first, then from here."""
    if source == "demo":
        return DEMO_KG
    path = Path(source).expanduser()
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        return (base_dir / path).resolve()
    return path.resolve()


_cache: dict[tuple[tuple[Path, ...], KGFormat], LoadedKG] = {}
_lock = threading.Lock()


def load_kg(spec: KGSpec | None = None, base_dir: Path | None = None) -> LoadedKG:
    """The graph ``spec`` names (the demo graph when None), loaded once and shared."""
    spec = spec or KGSpec()
    paths = tuple(resolve_source(s, base_dir) for s in spec.sources)
    for path in paths:
        if not path.exists():
            raise ConfigError(
                f"knowledge graph not found: {path} (use 'demo', a Hetionet directory, a PrimeKG CSV "
                "or a triples TSV; relative paths resolve beside the recipe, then from here)",
                key="resources.kg.source",
            )
    key = (paths, spec.format)
    with _lock:
        if key not in _cache:
            kg, report = KnowledgeGraph(), LoadReport(max_problems=spec.max_problems)
            for path in paths:
                load_into(kg, path, spec.format, report)
            log.info(
                "knowledge graph %s: %s; %d rows skipped",
                ", ".join(map(str, paths)),
                kg.summary(),
                report.skipped,
            )
            _cache[key] = LoadedKG(kg, report)
        return _cache[key]
