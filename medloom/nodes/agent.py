"""The ``agent`` node: a tool-using agent (ReAct loop, ``medloom.agents.react``) answers each item.

    answer:
      type: agent
      model: gen
      template: agent_react          # agent_react.chat.j2 / agent_react.completion.j2
      tools: [kg, {search: {corpus: demo}}, {mcp: {command: python, args: [server.py]}}]
      max_turns: 8
      max_tool_calls: 8
      max_tokens_per_item: 20000
      samples: 2

Each sample becomes one trace: ``answer`` is the final answer, ``meta`` holds the conversation in
the OpenAI chat schema (``messages``), the tools offered, and the turn and tool-call counts.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import Field

from medloom.agents.agent import Sampling, item_variables
from medloom.agents.context import AgentContext
from medloom.agents.react import Bounds, TokenBudget, ToolAgent
from medloom.agents.tools.base import ToolBox, ToolEnv, build_tools
from medloom.core.records import Item, Trace
from medloom.core.registry import REGISTRY, UnknownName
from medloom.nodes.kind import NodeBuild, NodeKind, NodeSpec, TemplateUse, register_kind
from medloom.nodes.protocol import NodeOutput

ToolRef = str | dict[str, dict[str, Any]]


class AgentNode(NodeSpec):
    type: Literal["agent"]
    model: str
    template: str = "agent_react"
    tools: list[ToolRef] = Field(default_factory=lambda: list[ToolRef](["kg"]))
    """Tool sets and tools by registered name; ``{NAME: {params}}`` passes parameters."""
    samples: int = Field(default=1, ge=1)
    temperatures: list[float] | None = None
    max_turns: int = Field(default=8, ge=1)
    max_tool_calls: int = Field(default=8, ge=0)
    max_tokens_per_item: int | None = Field(default=None, ge=1)
    tool_result_chars: int = Field(default=4000, ge=100)
    tool_timeout_s: float = Field(default=60.0, gt=0)
    sampling: Sampling = Field(default_factory=Sampling)
    hint_field: str | None = "path_hints"
    """An ``item.data`` field of guidance the template shows but a training row must not: the
    turns rendered without it are kept as ``meta.clean_head`` (``op: hint_rewrite`` uses them)."""


class AgentRun:
    """Runs the node's samples of one item concurrently; they share the item's token budget."""

    def __init__(self, agent: ToolAgent, spec: AgentNode):
        self.agent = agent
        self.spec = spec

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        budget = TokenBudget(self.spec.max_tokens_per_item)
        variables = item_variables(item)
        clean: dict[str, Any] | None = None
        field = self.spec.hint_field
        if field and field in item.data:
            clean = {**variables, "data": {k: v for k, v in item.data.items() if k != field}}
        temperatures = self.spec.temperatures or [self.spec.sampling.temperature]
        episodes = [
            self.agent.run(
                item, variables, ctx, budget=budget, temperature=t, sample_index=i, clean_variables=clean
            )
            for i, t in ((i, temperatures[i % len(temperatures)]) for i in range(self.spec.samples))
        ]
        traces = list(await asyncio.gather(*episodes))
        for trace in traces:
            ctx.trace_created(trace)
        return NodeOutput(traces=traces)


@register_kind
class AgentKind(NodeKind[AgentNode]):
    tag = "agent"
    Spec = AgentNode
    can_start = True
    in_loops = False

    def templates(self, spec: AgentNode) -> list[TemplateUse]:
        return [TemplateUse(spec.template, spec.model, "template", frozenset({"tools", "tool_names"}))]

    def check(self, spec: AgentNode, build: NodeBuild) -> None:
        super().check(spec, build)
        for i, ref in enumerate(spec.tools):
            name = ref if isinstance(ref, str) else next(iter(ref), "")
            if not isinstance(ref, str) and len(ref) != 1:
                raise build.fail("a tool entry is a name or {NAME: {params}}", f"tools.{i}")
            try:
                REGISTRY.get("tool", name)
            except UnknownName as exc:
                raise build.fail(str(exc), f"tools.{i}") from None

    def describe(self, spec: AgentNode) -> str:
        names = [r if isinstance(r, str) else next(iter(r)) for r in spec.tools]
        return (
            f"model `{spec.model}` with tools {names}, ≤{spec.max_turns} turns, ≤{spec.max_tool_calls} calls"
        )

    def build(self, spec: AgentNode, build: NodeBuild) -> AgentRun:
        env = ToolEnv(kg_spec=build.graph.resources.kg, base_dir=build.base_dir)
        try:
            tools = build_tools(spec.tools, env)
        except (KeyError, ValueError) as exc:
            raise build.fail(str(exc), "tools") from None
        box = ToolBox(tools, max_chars=spec.tool_result_chars, timeout_s=spec.tool_timeout_s)
        agent = build.make_agent(build.node, spec.model, spec.template, spec.sampling)
        bounds = Bounds(spec.max_turns, spec.max_tool_calls, spec.max_tokens_per_item)
        return AgentRun(ToolAgent(agent, box, bounds), spec)
