"""Instantiate a checked graph's nodes: each kind builds its live node, bound to the client."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from medloom.agents.agent import ModelRef
from medloom.agents.templates import TemplateLibrary
from medloom.core.errors import ConfigError
from medloom.core.usage import Price
from medloom.graphs.build import CompiledGraph, kinds_of
from medloom.graphs.spec import GraphSpec
from medloom.llm.client import LLMClient
from medloom.llm.discovery import check_served, served_models
from medloom.nodes.kind import NodeBuild
from medloom.nodes.protocol import Node


@dataclass
class Runtime:
    """The live node behind each node name."""

    compiled: CompiledGraph
    nodes: dict[str, Node] = field(default_factory=dict)
    prices: dict[str, Price] = field(default_factory=dict)
    """``llm.prices``: each node's calls are costed as they are counted."""


async def resolve_models(spec: GraphSpec, client: LLMClient) -> dict[str, ModelRef]:
    """Bind each model alias to a served name, asking the endpoints once what they serve: a name
    that no endpoint lists is a ConfigError naming what is served; a missing name takes the first."""
    refs: dict[str, ModelRef] = {}
    listed = await served_models(client, route=any(m.model is None for m in spec.models.values()))
    for alias, model in spec.models.items():
        wanted = model.endpoints or list(listed)
        served = model.model
        if served is None:
            names = [m for ep in wanted if ep in listed for m in listed[ep].models or []]
            if not names:
                problems = "; ".join(f"{s.where()}: {s.problem}" for s in listed.values() if s.problem)
                raise ConfigError(
                    "no model name given and the endpoints list none"
                    + (f" ({problems})" if problems else "")
                    + f"; set it with --set models.{alias}.model=NAME",
                    key=f"models.{alias}.model",
                )
            served = names[0]
        check_served(alias, served, wanted, listed)
        refs[alias] = ModelRef(
            alias=alias,
            served=served,
            endpoints=tuple(model.endpoints) if model.endpoints else None,
            mode=model.mode,
        )
    return refs


def instantiate(
    compiled: CompiledGraph,
    client: LLMClient,
    models: dict[str, ModelRef],
    templates: TemplateLibrary,
    *,
    file: str | Path | None = None,
    base_dir: Path | None = None,
) -> Runtime:
    rt = Runtime(compiled=compiled, prices=client.settings.prices)
    for name, kind in kinds_of(compiled.spec).items():
        build = NodeBuild(
            node=name,
            graph=compiled.spec,
            templates=templates,
            models=models,
            client=client,
            file=file,
            base_dir=base_dir,
        )
        rt.nodes[name] = kind.build(compiled.spec.nodes[name], build)
    return rt
