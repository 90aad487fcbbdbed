"""The graph spec: what a recipe YAML file says, validated with pydantic."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medloom.agents.agent import Sampling
from medloom.data.readers import DatasetSpec
from medloom.kg.spec import KGSpec
from medloom.llm.settings import EndpointConfig, LLMSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    """A model as the recipe names it. ``model`` is the served name; when omitted, the first
    model the endpoints list is used (handy with a single local vLLM server)."""

    model: str | None = None
    endpoints: list[str] | None = None
    mode: Literal["chat", "completion"] = "chat"


class GeneratorNode(_Strict):
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


class CheckSpec(_Strict):
    """A deterministic check by name, with its parameters."""

    check: str
    params: dict[str, Any] = Field(default_factory=dict)


class JudgeSpec(_Strict):
    """An LLM verifier."""

    judge: str
    """The model alias."""
    template: str = "mcq_judge"
    sampling: Sampling = Field(default_factory=lambda: Sampling(max_tokens=160))
    structured: bool = True
    parse_retries: int = Field(default=1, ge=0)


class VerifierNode(_Strict):
    type: Literal["verifier"]
    verifiers: list[CheckSpec | JudgeSpec] = Field(min_length=1)
    mode: Literal["all", "any", "threshold"] = "all"
    threshold: float = 0.5


class RefinerNode(_Strict):
    type: Literal["refiner"]
    model: str
    template: str = "mcq_refine"
    max_rounds: int = Field(default=2, ge=1)
    share_reasons: bool = True
    """Feed the refiner the reasons other attempts at the same item failed (ReasonMed)."""
    sampling: Sampling = Field(default_factory=Sampling)


class SelectorNode(_Strict):
    type: Literal["selector"]
    method: Literal["top_k", "vote", "first_passing", "all"] = "top_k"
    k: int = Field(default=1, ge=1)


class StepNode(_Strict):
    """A registered operation (see ``medloom.graphs.steps``), e.g. ``op: decontaminate``."""

    type: Literal["step"]
    op: str
    model: str | None = None
    models: list[str] | None = None
    template: str | None = None
    sampling: Sampling = Field(default_factory=Sampling)
    params: dict[str, Any] = Field(default_factory=dict)


NodeSpec = Annotated[
    GeneratorNode | VerifierNode | RefinerNode | SelectorNode | StepNode, Field(discriminator="type")
]

_CONDITION = re.compile(r"^(always|passed|failed|score\s*(>=|>|<=|<|==)\s*-?\d+(\.\d+)?)$")


class EdgeSpec(_Strict):
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    when: str = "always"

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("when")
    @classmethod
    def _condition(cls, value: str) -> str:
        value = value.strip()
        if not _CONDITION.match(value):
            raise ValueError(f"unknown condition '{value}'; use always, passed, failed or 'score >= 3'")
        return value

    @model_validator(mode="before")
    @classmethod
    def _arrow(cls, data: Any) -> Any:
        if isinstance(data, str):
            parts = [p.strip() for p in data.split("->")]
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"edge '{data}' must look like 'a -> b' or {{from: a, to: b}}")
            return {"from": parts[0], "to": parts[1]}
        return data


class SourceSpec(_Strict):
    """Items made by a registered source (see ``medloom.data.sources``) instead of read from a
    dataset, e.g. chains sampled from a knowledge graph."""

    op: str
    params: dict[str, Any] = Field(default_factory=dict)
    limit: int | None = Field(default=None, ge=1)


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


class GraphSpec(_Strict):
    name: str
    description: str = ""
    models: dict[str, ModelSpec] = Field(min_length=1)
    endpoints: list[EndpointConfig] = Field(default_factory=list)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    dataset: DatasetSpec | None = None
    source: SourceSpec | None = None
    kg: KGSpec | None = None
    """The knowledge graph KG steps, sources and checks use (``--set kg.source=PATH`` switches it)."""
    run: RunSettings = Field(default_factory=RunSettings)
    templates_dir: str | None = None
    nodes: dict[str, NodeSpec] = Field(min_length=1)
    edges: list[EdgeSpec] = Field(default_factory=list)
    output: OutputSpec = Field(default_factory=OutputSpec)

    @model_validator(mode="after")
    def _one_item_source(self) -> GraphSpec:
        if (self.dataset is None) == (self.source is None):
            raise ValueError("give exactly one of 'dataset' (read items) or 'source' (make items)")
        return self
