"""The ``verifier`` node: deterministic checks and LLM judges give each trace a verdict."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medloom.agents.agent import Sampling
from medloom.agents.roles import VerifierRole
from medloom.core.gather import gather_all
from medloom.core.records import Item, Trace
from medloom.core.registry import REGISTRY, UnknownName
from medloom.nodes.kind import TRACE_VARIABLES, NodeBuild, NodeKind, NodeSpec, TemplateUse, register_kind
from medloom.nodes.protocol import NodeContext, NodeOutput
from medloom.verifiers import Check, Composite, LLMJudge
from medloom.verifiers.base import ModelCheck


class CheckSpec(BaseModel):
    """A deterministic check by name (registered as a ``check``), with its parameters."""

    model_config = ConfigDict(extra="forbid")

    check: str
    params: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None
    """The model alias of a check that asks a model (e.g. ``medval``)."""
    template: str | None = None
    """That check's prompt template (default: the check's own)."""
    sampling: Sampling = Field(default_factory=lambda: Sampling(max_tokens=256))


class JudgeSpec(BaseModel):
    """An LLM verifier."""

    model_config = ConfigDict(extra="forbid")

    judge: str
    """The model alias."""
    template: str = "mcq_judge"
    sampling: Sampling = Field(default_factory=lambda: Sampling(max_tokens=160))
    structured: bool = True
    parse_retries: int = Field(default=1, ge=0)


class VerifierNode(NodeSpec):
    type: Literal["verifier"]
    verifiers: list[CheckSpec | JudgeSpec] = Field(min_length=1)
    mode: Literal["all", "any", "threshold"] = "all"
    threshold: float = 0.5


def check_class(name: str) -> type[Check]:
    cls: type[Check] = REGISTRY.get("check", name)
    return cls


def _model_check(name: str) -> type[ModelCheck] | None:
    """The class of check ``name`` when it asks a model (None for unknown names: check() reports them)."""
    try:
        cls = check_class(name)
    except UnknownName:
        return None
    return cls if issubclass(cls, ModelCheck) else None


class VerifierRun:
    """Verdicts for a batch; each is recorded on the trace, in the trajectory and in the counts."""

    def __init__(self, verifier: VerifierRole):
        self.verifier = verifier

    async def run(self, item: Item, traces: list[Trace], ctx: NodeContext) -> NodeOutput:
        verdicts = await gather_all(self.verifier.verify(item, t, ctx) for t in traces)
        return NodeOutput(traces=[ctx.judged(t, v) for t, v in zip(traces, verdicts, strict=True)])


@register_kind
class VerifierKind(NodeKind[VerifierNode]):
    tag = "verifier"
    Spec = VerifierNode
    gives_verdicts = True

    def check(self, spec: VerifierNode, build: NodeBuild) -> None:
        for i, v in enumerate(spec.verifiers):
            if isinstance(v, JudgeSpec):
                build.need_model(v.judge, f"verifiers.{i}.judge")
                build.need_template(v.template, v.judge, f"verifiers.{i}.template", f"verifiers.{i}.judge")
                continue
            try:
                cls = check_class(v.check)
            except UnknownName as exc:
                raise build.fail(str(exc), f"verifiers.{i}.check") from None
            try:
                cls.from_params(v.params, build.graph.resources)
            except TypeError as exc:
                raise build.fail(
                    f"bad parameters for check '{v.check}': {exc}", f"verifiers.{i}.params"
                ) from None
            if not issubclass(cls, ModelCheck):
                if v.model or v.template:
                    raise build.fail(f"check '{v.check}' asks no model", f"verifiers.{i}.model")
                continue
            if v.model is None:
                raise build.fail(
                    f"check '{v.check}' asks a model: name its alias (`model: ALIAS`)", f"verifiers.{i}.model"
                )
            template = v.template or cls.default_template
            build.need_template(template, v.model, f"verifiers.{i}.template", f"verifiers.{i}.model")

    def describe(self, spec: VerifierNode) -> str:
        parts = []
        for v in spec.verifiers:
            if isinstance(v, JudgeSpec):
                parts.append(f"LLM judge `{v.judge}` (template `{v.template}`)")
            else:
                by = f" by `{v.model}`" if v.model else ""
                parts.append(f"check `{v.check}`{by}" + (f" {json.dumps(v.params)}" if v.params else ""))
        return f"{spec.mode} of: " + "; ".join(parts)

    def templates(self, spec: VerifierNode) -> list[TemplateUse]:
        uses = []
        for i, v in enumerate(spec.verifiers):
            if isinstance(v, JudgeSpec):
                uses.append(TemplateUse(v.template, v.judge, f"verifiers.{i}.template", TRACE_VARIABLES))
            elif v.model and (cls := _model_check(v.check)) is not None:
                template = v.template or cls.default_template
                uses.append(TemplateUse(template, v.model, f"verifiers.{i}.template", cls.template_variables))
        return uses

    def build(self, spec: VerifierNode, build: NodeBuild) -> VerifierRun:
        parts: list[VerifierRole] = []
        for v in spec.verifiers:
            if isinstance(v, JudgeSpec):
                agent = build.make_agent(f"{build.node}:judge", v.judge, v.template, v.sampling)
                parts.append(LLMJudge(agent, parse_retries=v.parse_retries, structured=v.structured))
            else:
                check = check_class(v.check).from_params(v.params, build.graph.resources)
                if isinstance(check, ModelCheck) and v.model:
                    template = v.template or check.default_template
                    check.bind(build.make_agent(f"{build.node}:{v.check}", v.model, template, v.sampling))
                parts.append(check)
        if len(parts) == 1:
            return VerifierRun(parts[0])
        return VerifierRun(Composite(parts, spec.mode, spec.threshold, name=build.node))
