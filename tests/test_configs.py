"""Every recipe shipped in configs/ validates: keys, models, templates, ops and graph shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from medloom.graphs.build import build_graph, template_library
from medloom.graphs.loader import load_spec

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_recipes() -> None:
    names = {p.stem for p in CONFIGS}
    assert {"mcq_refine", "meditron_resample"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_recipe_validates(path: Path) -> None:
    spec = load_spec(path)
    assert spec.name == path.stem, "a recipe's name should match its file name"
    compiled = build_graph(spec, file=path, templates=template_library(spec, path.parent))
    assert compiled.sinks
