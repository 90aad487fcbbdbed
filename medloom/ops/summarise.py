"""Summaries (ReasonMed): an LLM condenses each trace's reasoning into a short answer.

``op: summarise`` calls the node's model (template, e.g. ``reasonmed_summary``) once per trace
and stores the text in ``trace.meta["summary"]`` (a leading ``Summary:`` label is removed);
the long chain of thought stays in the row's ``reasoning`` column. A trace whose summary comes
back empty is dropped ("empty summary"); so is one whose summary names a different option than
the trace's answer ("summary contradicts"), unless ``drop_contradictions`` is false.
"""

from __future__ import annotations

import asyncio
import re

from medloom.agents.agent import item_variables, trace_variables
from medloom.agents.context import AgentContext
from medloom.agents.parsing import parse_reasoning
from medloom.core.records import Item, Trace
from medloom.nodes.protocol import Drop, NodeOutput
from medloom.nodes.step import BaseOp, OpBuild, OpParams, register_op

_LABEL = re.compile(r"^\s*summary\s*:\s*", re.I)


class SummariseParams(OpParams):
    key: str = "summary"
    """The ``trace.meta`` key the summary is stored under (``output.columns`` can name it)."""
    drop_contradictions: bool = True
    """Drop a trace whose summary names another option than its chain of thought."""


@register_op("summarise")
class Summarise(BaseOp):
    """Write a concise summary of each trace."""

    Params = SummariseParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        self.agent = build.agent()

    async def summarise(self, item: Item, trace: Trace, ctx: AgentContext) -> tuple[Trace, str]:
        texts, _ = await self.agent.call({**item_variables(item), **trace_variables(trace)}, ctx)
        summary = _LABEL.sub("", texts[0] if texts else "").strip()
        return trace.model_copy(update={"meta": {**trace.meta, self.params.key: summary}}), summary

    def contradiction(self, item: Item, trace: Trace, summary: str) -> str | None:
        if not (self.params.drop_contradictions and item.options and trace.answer):
            return None
        _, stated, _ = parse_reasoning(summary, item.options)
        if stated is None or stated == trace.answer:
            return None
        return f"the summary answers {stated} but the chain of thought answers {trace.answer}"

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        done = await asyncio.gather(*(self.summarise(item, t, ctx) for t in traces))
        keep: list[Trace] = []
        drops: list[Drop] = []
        for trace, summary in done:
            if not summary:
                drops.append(Drop(trace, "the summariser returned no text", "empty summary"))
            elif (why := self.contradiction(item, trace, summary)) is not None:
                drops.append(Drop(trace, why, "summary contradicts"))
            else:
                keep.append(trace)
        return NodeOutput(traces=keep, drops=drops)
