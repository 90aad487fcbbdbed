"""Run a shipped recipe from configs/ in process against a fake endpoint."""

from __future__ import annotations

from pathlib import Path

from medloom.graphs.build import build_graph, template_library
from medloom.graphs.loader import load_spec
from medloom.graphs.runtime import Runtime, instantiate, resolve_models
from medloom.llm.client import LLMClient

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


async def recipe_runtime(name: str, client: LLMClient, *overrides: str) -> Runtime:
    """The runtime of ``configs/<name>.yaml`` (with ``--set``-style overrides) bound to ``client``."""
    path = CONFIGS / f"{name}.yaml"
    spec = load_spec(path, list(overrides))
    templates = template_library(spec, path.parent)
    compiled = build_graph(spec, file=path, templates=templates)
    models = await resolve_models(spec, client)
    return instantiate(compiled, client, models, templates, file=path, base_dir=path.parent)


def tail(prompt: str) -> str:
    """The part of a few-shot prompt after the last example (the case being asked about)."""
    return prompt.rsplit("###", 1)[-1]
