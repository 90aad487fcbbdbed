"""The ``generator`` node: samples traces for an item from one or more models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from medloom.agents.agent import Sampling
from medloom.agents.context import AgentContext
from medloom.agents.roles import Generator
from medloom.core.gather import gather_all
from medloom.core.records import Item, Trace
from medloom.nodes.kind import NodeBuild, NodeKind, NodeSpec, TemplateUse, register_kind
from medloom.nodes.protocol import NodeOutput


class GeneratorNode(NodeSpec):
    type: Literal["generator"]
    models: list[str] = Field(min_length=1)
    template: str
    samples: int = Field(default=1, ge=1)
    temperatures: list[float] | None = None
    sampling: Sampling = Field(default_factory=Sampling)

    @model_validator(mode="before")
    @classmethod
    def _single_model(cls, data: Any) -> Any:
        if isinstance(data, dict) and "model" in data and "models" not in data:
            data = {k: v for k, v in data.items() if k != "model"} | {"models": [data["model"]]}
        return data


class GeneratorRun:
    """Fans out over the node's models; traces routed in are passed to the template as inputs."""

    def __init__(self, generators: list[Generator]):
        self.generators = generators

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        batches = await gather_all(g.generate(item, ctx, inputs=traces) for g in self.generators)
        return NodeOutput(traces=[t for b in batches for t in b])


@register_kind
class GeneratorKind(NodeKind[GeneratorNode]):
    tag = "generator"
    Spec = GeneratorNode
    can_start = True
    in_loops = False

    def check(self, spec: GeneratorNode, build: NodeBuild) -> None:
        for i, alias in enumerate(spec.models):
            build.need_model(alias, f"models.{i}")
            build.need_template(spec.template, alias, "template", f"models.{i}")

    def templates(self, spec: GeneratorNode) -> list[TemplateUse]:
        return [TemplateUse(spec.template, alias, "template", frozenset({"inputs"})) for alias in spec.models]

    def describe(self, spec: GeneratorNode) -> str:
        return f"models {spec.models}, template `{spec.template}`"

    def build(self, spec: GeneratorNode, build: NodeBuild) -> GeneratorRun:
        return GeneratorRun(
            [
                Generator(
                    build.make_agent(build.node, alias, spec.template, spec.sampling),
                    samples=spec.samples,
                    temperatures=spec.temperatures,
                )
                for alias in spec.models
            ]
        )
