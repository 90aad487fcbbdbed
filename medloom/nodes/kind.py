"""Node kinds: what a recipe's ``type:`` names. Each kind owns its spec model, its checks, how
it is built into a :class:`~medloom.nodes.protocol.Node` and what it counts, in one module.

Adding a node kind is one module that subclasses :class:`NodeKind` and registers it::

    @register_kind
    class Echo(NodeKind):
        tag = "echo"
        Spec = EchoSpec
        def build(self, spec, build): return EchoNode()
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from medloom.agents.agent import Agent, ModelRef, Sampling, item_variables
from medloom.agents.templates import TemplateLibrary
from medloom.core.errors import GraphError
from medloom.core.records import Item
from medloom.core.registry import REGISTRY
from medloom.nodes.protocol import Node
from medloom.verifiers.base import CheckResources

if TYPE_CHECKING:
    from medloom.llm.client import LLMClient


class ModelView(Protocol):
    @property
    def mode(self) -> Literal["chat", "completion"]: ...


class Recipe(Protocol):
    """What node kinds and ops read of the recipe (``medloom.graphs.spec.GraphSpec`` is one)."""

    @property
    def models(self) -> Mapping[str, ModelView]: ...

    @property
    def nodes(self) -> Mapping[str, NodeSpec]: ...

    @property
    def resources(self) -> CheckResources: ...


class NodeSpec(BaseModel):
    """Base of every kind's spec: ``type`` picks the kind; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    type: str


S = TypeVar("S", bound=NodeSpec)

ITEM_VARIABLES = frozenset(item_variables(Item(id="probe", index=0, question="")))
"""What every node passes to its templates: the item's fields."""

TRACE_VARIABLES = frozenset({"trace", "steps", "answer", "reasoning"})
"""What nodes that work on one trace pass to its templates (``trace_variables``)."""


@dataclass(frozen=True)
class TemplateUse:
    """A prompt template a node renders, with the model whose mode picks its file."""

    template: str
    model: str
    key: str
    """Where the recipe names it (``template`` or ``verifiers.1.template``)."""
    variables: frozenset[str] = frozenset()
    """Variables the node passes besides the item's (e.g. ``steps``, ``verdict`` for a refiner)."""


@dataclass
class NodeBuild:
    """What a kind gets to check or build a node: its name, the recipe, templates and models.

    At check time (``medloom validate``, before any endpoint is known) ``client`` is None and
    ``models`` is empty: kinds only check there, and build live nodes once a client exists.
    """

    node: str
    graph: Recipe
    templates: TemplateLibrary
    models: dict[str, ModelRef]
    client: LLMClient | None = None
    file: str | Path | None = None
    base_dir: Path | None = None

    def fail(self, message: str, key: str = "") -> GraphError:
        where = f"nodes.{self.node}" + (f".{key}" if key else "")
        return GraphError(message, file=self.file, key=where)

    def need_model(self, alias: str, key: str) -> str:
        """The mode of model ``alias``; an error naming ``key`` when the recipe has no such model."""
        if alias not in self.graph.models:
            raise self.fail(f"unknown model '{alias}' (models: {', '.join(self.graph.models)})", key)
        mode: str = self.graph.models[alias].mode
        return mode

    def need_template(self, name: str, alias: str, key: str, model_key: str = "model") -> None:
        mode = self.need_model(alias, model_key)
        if not self.templates.has(name, mode):  # type: ignore[arg-type]
            raise self.fail(
                f"prompt template '{name}.{mode}.j2' not found "
                f"(available: {', '.join(self.templates.available())})",
                key,
            )

    def need_variables(self, use: TemplateUse) -> None:
        """An error naming the template file, ``use.key`` and the first variable the template
        reads that this node does not pass (the item's fields plus ``use.variables``)."""
        mode = self.need_model(use.model, "model")
        if not self.templates.has(use.template, mode):  # type: ignore[arg-type]
            return  # need_template reports a missing template
        provided = ITEM_VARIABLES | use.variables
        unknown = sorted(self.templates.variables(use.template, mode) - provided)  # type: ignore[arg-type]
        if unknown:
            source = self.templates.source_path(use.template, mode)  # type: ignore[arg-type]
            raise self.fail(
                f"template '{source or use.template}' uses '{unknown[0]}', which node '{self.node}' "
                f"does not provide (it provides: {', '.join(sorted(provided))}); "
                "per-item fields are under data (e.g. data.age)",
                use.key,
            )

    def make_agent(self, name: str, alias: str, template: str, sampling: Sampling) -> Agent:
        """A live agent; only at build time (a client is needed)."""
        if self.client is None:
            raise RuntimeError(f"node '{self.node}': agents are built only once a client exists")
        mode = self.need_model(alias, "model")
        ref = self.models.get(alias) or ModelRef(alias=alias, served=alias, mode=mode)  # type: ignore[arg-type]
        return Agent(name, ref, template, self.client, sampling=sampling, templates=self.templates)


class NodeKind(ABC, Generic[S]):
    """One node type. Class attributes say where the kind may sit in a graph."""

    tag: ClassVar[str]
    """The ``type:`` recipes write."""
    Spec: ClassVar[type[NodeSpec]]
    can_start: ClassVar[bool] = False
    """May have no incoming edge (runs once per item with no traces)."""
    in_loops: ClassVar[bool] = True
    """May sit inside a loop."""
    bounds_loops: ClassVar[bool] = False
    """Every loop through a node of this kind ends (it stops traces after ``loop_bound`` rounds)."""
    gives_verdicts: ClassVar[bool] = False

    def check(self, spec: S, build: NodeBuild) -> None:
        """Check names and parameters against the recipe (models, templates); never call a model."""
        for use in self.templates(spec):
            build.need_template(use.template, use.model, use.key)

    def templates(self, spec: S) -> list[TemplateUse]:
        """The prompt templates the node renders (checked to exist, and their variables)."""
        return []

    def placement(self, name: str, spec: S, predecessors: list[NodeSpec]) -> str | None:
        """Why the node cannot sit after ``predecessors`` (None: it can)."""
        return None

    def describe(self, spec: S) -> str:
        """What the node does, in a few words (the dataset card's recipe table)."""
        return ""

    def loop_bound(self, spec: S) -> int:
        """How many rounds a loop through this node can make (for kinds that bound loops)."""
        return 0

    @abstractmethod
    def build(self, spec: S, build: NodeBuild) -> Node:
        """The live node."""


def register_kind(cls: type[NodeKind[Any]]) -> type[NodeKind[Any]]:
    """Class decorator: make ``cls.tag`` usable as a node ``type:`` in recipes."""
    REGISTRY.add("node", cls.tag, cls())
    return cls


def node_kind(type_name: str) -> NodeKind[Any]:
    kind: NodeKind[Any] = REGISTRY.get("node", type_name)
    return kind
