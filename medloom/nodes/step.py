"""Step nodes: registered operations (``medloom/ops/``) a recipe names with ``type: step`` and ``op: NAME``.

A step receives an item and the traces routed to it and returns the traces it passes on, the
ones it drops (with a reason), optionally an updated item (for example with knowledge-graph
paths added to ``item.data``) or an item-level rejection. Steps without incoming edges run
once per item with no traces, like generators.

Register an op with :func:`register_op`; third-party packages expose modules that do so through
the ``medloom.plugins`` entry-point group (see ``medloom.core.registry``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medloom.agents.agent import Agent, ModelRef, Sampling
from medloom.agents.context import AgentContext
from medloom.core.records import Item, Trace
from medloom.core.registry import REGISTRY
from medloom.nodes.kind import NodeBuild, NodeKind, NodeSpec, TemplateUse, register_kind
from medloom.nodes.protocol import Node, NodeOutput

P = TypeVar("P", bound=BaseModel)


class StepNode(NodeSpec):
    """A registered operation (one module each in ``medloom/ops``), e.g. ``op: decontaminate``."""

    type: Literal["step"]
    op: str
    model: str | None = None
    models: list[str] | None = None
    template: str | None = None
    sampling: Sampling = Field(default_factory=Sampling)
    params: dict[str, Any] = Field(default_factory=dict)


class OpParams(BaseModel):
    """Base for an op's ``params``: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class OpBuild(NodeBuild):
    """What an op's constructor gets: its node's build context plus its ``type: step`` spec.

    At check time (before any endpoint is known) ``client`` is None: constructors must only
    validate and build, never call a model.
    """

    spec: StepNode = field(kw_only=True)

    def params(self, model: type[P]) -> P:
        """The node's ``params`` validated as ``model``; errors name the key."""
        try:
            return model.model_validate(self.spec.params)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise self.fail(
                f"{err['msg']} (op '{self.spec.op}')", f"params.{loc}" if loc else "params"
            ) from None

    def agent(
        self,
        template: str | None = None,
        *,
        model: str | None = None,
        sampling: Sampling | None = None,
        name: str | None = None,
        variables: Iterable[str] | None = None,
        key: str = "template",
    ) -> Agent:
        """An agent for this node; model and template default to the node's, and must exist.

        ``variables``: what the op passes to the template besides the item's fields; given, the
        template may read nothing else (checked by ``medloom validate``; ``key`` names where the
        recipe sets the template, e.g. ``params.report_template``)."""
        alias = model or self.spec.model or (self.spec.models[0] if self.spec.models else None)
        if alias is None:
            raise self.fail(f"op '{self.spec.op}' needs a model: set nodes.{self.node}.model", "model")
        mode = self.need_model(alias, "model")
        template = template or self.spec.template
        if template is None:
            raise self.fail(f"op '{self.spec.op}' needs a prompt template", "template")
        self.need_template(template, alias, key)
        if variables is not None:
            self.need_variables(TemplateUse(template, alias, key, frozenset(variables)))
        ref = self.models.get(alias) or ModelRef(alias=alias, served=alias, mode=mode)  # type: ignore[arg-type]
        return Agent(
            name or self.node,
            ref,
            template,
            self.client,
            sampling=sampling or self.spec.sampling,
            templates=self.templates,
        )


OpFactory = Callable[["OpBuild"], Node]
"""Usually a class taking an OpBuild."""


def register_op(name: str) -> Callable[[type[Any]], type[Any]]:
    """Class decorator: make ``name`` usable as ``op:`` in recipes."""

    def wrap(cls: type[Any]) -> type[Any]:
        REGISTRY.add("op", name, cls)
        cls.op_name = name
        return cls

    return wrap


def registered_ops() -> dict[str, OpFactory]:
    """Every known op (built-in, registered, and from installed plugins)."""
    return REGISTRY.all("op")


class BaseOp:
    """Convenience base: ``Params`` is validated from the node's params into ``self.params``."""

    Params: ClassVar[type[OpParams]] = OpParams
    op_name: ClassVar[str] = ""

    def __init__(self, build: OpBuild):
        self.build = build
        self.node = build.node
        self.params: Any = build.params(self.Params)

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        raise NotImplementedError


@register_kind
class StepKind(NodeKind[StepNode]):
    tag = "step"
    Spec = StepNode
    can_start = True

    def _op_build(self, spec: StepNode, build: NodeBuild) -> OpBuild:
        return OpBuild(**{f.name: getattr(build, f.name) for f in fields(NodeBuild)}, spec=spec)

    def _factory(self, spec: StepNode, build: NodeBuild) -> OpFactory:
        ops = registered_ops()
        if spec.op not in ops:
            raise build.fail(f"unknown op '{spec.op}' (ops: {', '.join(sorted(ops))})", "op")
        return ops[spec.op]

    def check(self, spec: StepNode, build: NodeBuild) -> None:
        """The op exists and accepts its params, models and templates (built without a client)."""
        factory = self._factory(spec, build)
        for i, alias in enumerate(spec.models or []):
            build.need_model(alias, f"models.{i}")
        factory(self._op_build(spec, build))

    def describe(self, spec: StepNode) -> str:
        return spec.op

    def build(self, spec: StepNode, build: NodeBuild) -> Node:
        return self._factory(spec, build)(self._op_build(spec, build))
