"""The graph spec: what a recipe YAML file says, validated with pydantic."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from medloom.core.budget import BudgetCaps
from medloom.core.registry import UnknownName
from medloom.data.readers import DatasetSpec
from medloom.data.sources import SourceSpec
from medloom.graphs.conditions import Always, Condition, parse_condition
from medloom.kg.spec import KGSpec
from medloom.llm.settings import EndpointConfig, LLMSettings
from medloom.nodes.kind import NodeSpec, node_kind


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    """A model as the recipe names it. ``model`` is the served name; when omitted, the first
    model the endpoints list is used (handy with a single local vLLM server)."""

    model: str | None = None
    endpoints: list[str] | None = None
    mode: Literal["chat", "completion"] = "chat"


def _validate_nodes(value: Any) -> dict[str, NodeSpec]:
    """Each node validated by the spec model of its kind (``type``); errors keep their keys."""
    if not isinstance(value, dict):
        raise ValueError("nodes must be a mapping of name → node")
    out: dict[str, NodeSpec] = {}
    errors: list[Any] = []
    for name, raw in value.items():
        if isinstance(raw, NodeSpec):
            out[name] = raw
            continue
        type_name = raw.get("type") if isinstance(raw, dict) else None
        if not isinstance(type_name, str):
            errors.append({"type": "missing", "loc": (name, "type"), "input": raw})
            continue
        try:
            kind = node_kind(type_name)
        except UnknownName as exc:
            error = PydanticCustomError("unknown_node_type", "{message}", {"message": str(exc)})
            errors.append({"type": error, "loc": (name,), "input": raw})
            continue
        try:
            out[name] = kind.Spec.model_validate(raw)
        except ValidationError as exc:
            for e in exc.errors(include_url=False):
                errors.append(
                    {
                        "type": e["type"],
                        "loc": (name, *e["loc"]),
                        "input": e["input"],
                        "ctx": e.get("ctx", {}),
                    }
                )
    if errors:
        raise ValidationError.from_exception_data("nodes", errors)
    return out


class EdgeSpec(_Strict):
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    when: str = "always"

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    _condition: Condition = PrivateAttr(default_factory=Always)

    @field_validator("when")
    @classmethod
    def _known_condition(cls, value: str) -> str:
        parse_condition(value)
        return value.strip()

    def model_post_init(self, context: Any) -> None:
        self._condition = parse_condition(self.when)

    @property
    def condition(self) -> Condition:
        """``when``, parsed once."""
        return self._condition

    @model_validator(mode="before")
    @classmethod
    def _arrow(cls, data: Any) -> Any:
        if isinstance(data, str):
            parts = [p.strip() for p in data.split("->")]
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"edge '{data}' must look like 'a -> b' or {{from: a, to: b}}")
            return {"from": parts[0], "to": parts[1]}
        return data


class OutputSpec(_Strict):
    passthrough: list[str] = Field(default_factory=list)
    """Input fields copied into every output row (as a struct in ``source_fields``)."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Extra output columns: name → ``meta.KEY`` (from the kept trace) or ``data.KEY`` (from the
    item, after any step updated it). Text is stored as is, anything else as JSON text."""
    push_to_hub: str | None = None

    @field_validator("columns")
    @classmethod
    def _column_sources(cls, value: dict[str, str]) -> dict[str, str]:
        for name, source in value.items():
            if not source.startswith(("meta.", "data.")) or len(source.split(".", 1)[1]) == 0:
                raise ValueError(f"column '{name}': source '{source}' must be meta.KEY or data.KEY")
        return value


class RunSettings(_Strict):
    concurrency: int = Field(default=16, ge=1)
    """Items in flight at once."""
    runs_dir: str = "runs"
    max_node_visits: int | None = Field(default=None, ge=1)
    """How often one item may enter one node before it fails as looping (default: from the
    graph's loop bounds, see ``medloom.graphs.build.visit_bound``)."""
    budget: BudgetCaps = Field(default_factory=BudgetCaps)
    """Caps on the run's paid spend over all its sessions (``--max-cost/--max-tokens/--max-calls``):
    once one is reached no new item starts; the items in flight finish (``medloom.core.budget``)."""


class Resources(_Strict):
    """Shared resources nodes, checks and sources use, by name (``resources.kg``)."""

    kg: KGSpec | None = None
    """The knowledge graph (``--set resources.kg.source=PATH`` switches it)."""


class GraphSpec(_Strict):
    name: str
    description: str = ""
    models: dict[str, ModelSpec] = Field(min_length=1)
    endpoints: list[EndpointConfig] = Field(default_factory=list)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    dataset: DatasetSpec | None = None
    source: SourceSpec | None = None
    resources: Resources = Field(default_factory=Resources)
    run: RunSettings = Field(default_factory=RunSettings)
    templates_dir: str | None = None
    nodes: dict[str, SerializeAsAny[NodeSpec]] = Field(min_length=1)
    """Each node's spec is the model of its kind (see ``medloom.nodes``)."""
    edges: list[EdgeSpec] = Field(default_factory=list)
    output: OutputSpec = Field(default_factory=OutputSpec)

    @model_validator(mode="before")
    @classmethod
    def _kg_alias(cls, data: Any) -> Any:
        """Deprecated: a top-level ``kg:`` (and ``--set kg.source=``) is read as ``resources.kg``;
        its keys win over those already under ``resources.kg``."""
        if not isinstance(data, dict) or "kg" not in data:
            return data
        data = dict(data)
        legacy = data.pop("kg")
        resources = dict(data.get("resources") or {})
        current = resources.get("kg")
        if isinstance(legacy, dict) and isinstance(current, dict):
            legacy = {**current, **legacy}
        resources["kg"] = legacy
        data["resources"] = resources
        return data

    @field_validator("nodes", mode="wrap")
    @classmethod
    def _nodes(cls, value: Any, handler: Any) -> dict[str, NodeSpec]:
        nodes: dict[str, NodeSpec] = handler(_validate_nodes(value))
        return nodes

    @model_validator(mode="after")
    def _one_item_source(self) -> GraphSpec:
        if (self.dataset is None) == (self.source is None):
            raise ValueError("give exactly one of 'dataset' (read items) or 'source' (make items)")
        return self
