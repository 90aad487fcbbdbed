"""Summaries (ReasonMed): an LLM condenses each trace's reasoning into a short answer.

``op: summarise`` calls the node's model (template, e.g. ``reasonmed_summary``) once per trace
and stores the text in ``trace.meta["summary"]`` (a leading ``Summary:`` label is removed);
the long chain of thought stays in the row's ``reasoning`` column. A trace whose summary comes
back empty is dropped ("empty summary").
"""

from __future__ import annotations

import asyncio
import re

from medloom.agents.agent import item_variables, trace_variables
from medloom.agents.context import AgentContext
from medloom.graphs.steps import BaseStep, Drop, StepBuild, StepOutput, StepParams, register_step
from medloom.records import Item, Trace

_LABEL = re.compile(r"^\s*summary\s*:\s*", re.I)


class SummariseParams(StepParams):
    key: str = "summary"
    """The ``trace.meta`` key the summary is stored under (``output.columns`` can name it)."""


@register_step("summarise")
class Summarise(BaseStep):
    """Write a concise summary of each trace."""

    Params = SummariseParams

    def __init__(self, build: StepBuild):
        super().__init__(build)
        self.agent = build.agent()

    async def summarise(self, item: Item, trace: Trace, ctx: AgentContext) -> tuple[Trace, str]:
        texts, _ = await self.agent.call({**item_variables(item), **trace_variables(trace)}, ctx)
        summary = _LABEL.sub("", texts[0] if texts else "").strip()
        return trace.model_copy(update={"meta": {**trace.meta, self.params.key: summary}}), summary

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> StepOutput:
        done = await asyncio.gather(*(self.summarise(item, t, ctx) for t in traces))
        keep = [t for t, s in done if s]
        drops = [Drop(t, "the summariser returned no text", "empty summary") for t, s in done if not s]
        return StepOutput(traces=keep, drops=drops)
