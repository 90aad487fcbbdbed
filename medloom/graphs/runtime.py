"""Instantiate a checked graph's nodes: agents bound to models, verifiers, refiners."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from medloom.agents.agent import Agent, ModelRef
from medloom.agents.roles import Generator, Refiner, VerifierRole
from medloom.agents.templates import TemplateLibrary
from medloom.core.errors import ConfigError
from medloom.core.usage import Price
from medloom.graphs.build import CompiledGraph
from medloom.graphs.spec import (
    GeneratorNode,
    GraphSpec,
    JudgeSpec,
    RefinerNode,
    SelectorNode,
    StepNode,
    VerifierNode,
)
from medloom.llm.client import LLMClient
from medloom.nodes.step import Node, OpBuild, registered_ops
from medloom.verifiers import CHECKS, Composite, LLMJudge


@dataclass
class Runtime:
    """The live objects behind each node."""

    compiled: CompiledGraph
    generators: dict[str, list[Generator]] = field(default_factory=dict)
    verifiers: dict[str, VerifierRole] = field(default_factory=dict)
    refiners: dict[str, tuple[Refiner, RefinerNode]] = field(default_factory=dict)
    selectors: dict[str, SelectorNode] = field(default_factory=dict)
    steps: dict[str, Node] = field(default_factory=dict)
    prices: dict[str, Price] = field(default_factory=dict)
    """``llm.prices``: each node's calls are costed as they are counted."""


async def resolve_models(spec: GraphSpec, client: LLMClient) -> dict[str, ModelRef]:
    """Bind each model alias to a served name, asking the endpoints where none is given."""
    refs: dict[str, ModelRef] = {}
    listed: dict[str, list[str]] | None = None
    for alias, model in spec.models.items():
        served = model.model
        if served is None:
            if listed is None:
                listed = await client.discover_models()
            wanted = model.endpoints or list(listed)
            names = [m for ep in wanted for m in listed.get(ep, [])]
            if not names:
                raise ConfigError(
                    "no model name given and the endpoints list none; set it with "
                    f"--set models.{alias}.model=NAME",
                    key=f"models.{alias}.model",
                )
            served = names[0]
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
    for name, node in compiled.spec.nodes.items():
        if isinstance(node, GeneratorNode):
            rt.generators[name] = [
                Generator(
                    Agent(
                        name,
                        models[alias],
                        node.template,
                        client,
                        sampling=node.sampling,
                        templates=templates,
                    ),
                    samples=node.samples,
                    temperatures=node.temperatures,
                )
                for alias in node.models
            ]
        elif isinstance(node, VerifierNode):
            parts: list[VerifierRole] = []
            for v in node.verifiers:
                if isinstance(v, JudgeSpec):
                    agent = Agent(
                        f"{name}:judge",
                        models[v.judge],
                        v.template,
                        client,
                        sampling=v.sampling,
                        templates=templates,
                    )
                    parts.append(LLMJudge(agent, parse_retries=v.parse_retries, structured=v.structured))
                else:
                    parts.append(CHECKS[v.check].from_params(v.params, compiled.spec))
            rt.verifiers[name] = (
                parts[0] if len(parts) == 1 else Composite(parts, node.mode, node.threshold, name=name)
            )
        elif isinstance(node, RefinerNode):
            agent = Agent(
                name, models[node.model], node.template, client, sampling=node.sampling, templates=templates
            )
            rt.refiners[name] = (Refiner(agent), node)
        elif isinstance(node, SelectorNode):
            rt.selectors[name] = node
        elif isinstance(node, StepNode):
            build = OpBuild(
                node=name,
                spec=node,
                graph=compiled.spec,
                templates=templates,
                models=models,
                client=client,
                file=file,
                base_dir=base_dir,
            )
            rt.steps[name] = registered_ops()[node.op](build)
    return rt
