"""MedResearcher-R1 steps around the ``agent`` node.

- ``op: path_hints``: masked path guidance. The item's KG path (``data.path``) becomes hints such
  as ``([MASK1], treats, [MASK2])`` in ``data.path_hints``; the agent's template shows them in
  its system prompt, so the agent knows the shape of the chain but no entity of it.
- ``op: hint_rewrite``: the trajectory must not betray that the agent was guided. The system turn
  is replaced by the one rendered without hints (``meta.clean_head``), every assistant turn that
  mentions the hints (mask tokens, "hint", "guidance", a hint's text) is rewritten by the node's
  model (template ``hint_rewrite``), and the result is verified: a trace in which any trace of the
  hints survives is dropped ("hint leak"). A node without a model only verifies. The cleaned
  trace is recorded again (a ``trace`` event with the same id): exports read that conversation.
"""

from __future__ import annotations

import re
from typing import Any

from medloom.agents.agent import Agent
from medloom.agents.context import AgentContext
from medloom.core.records import Item, Trace
from medloom.kg.paths import KGPath
from medloom.nodes.protocol import Drop, NodeOutput
from medloom.nodes.step import BaseOp, OpBuild, OpParams, register_op


class PathHintsParams(OpParams):
    path_field: str = "path"
    key: str = "path_hints"
    mask: str = "[MASK{n}]"
    """The masked entity; ``{n}`` numbers the entities along the path."""


def masked_hints(path: KGPath, mask: str = "[MASK{n}]") -> list[str]:
    """One ``(head, relation, tail)`` hint per hop, entities masked and numbered along the walk."""
    hints: list[str] = []
    for i, hop in enumerate(path.hops, 1):
        a, b = mask.format(n=i), mask.format(n=i + 1)
        head, tail = (a, b) if hop.forward else (b, a)
        hints.append(f"({head}, {hop.relation}, {tail})")
    return hints


@register_op("path_hints")
class PathHints(BaseOp):
    """Add masked path guidance to each item (``data.path_hints``)."""

    Params = PathHintsParams

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        raw = item.data.get(self.params.path_field)
        if not raw:
            return NodeOutput(traces=traces, reject=f"no '{self.params.path_field}' in the item's data",
                              reject_code="no path")  # fmt: skip
        hints = masked_hints(KGPath.model_validate(raw), self.params.mask)
        updated = item.model_copy(update={"data": {**item.data, self.params.key: hints}})
        return NodeOutput(traces=traces, item=updated)


_LABEL = re.compile(r"^\s*rewritten\s*:\s*", re.I)
"""The completion template's answer label (the prompt's last line, joined back by the agent)."""

DEFAULT_MARKERS = ["mask", "hint", "guidance", "masked path", "chain of relations"]


class HintRewriteParams(OpParams):
    hints_field: str = "path_hints"
    markers: list[str] = DEFAULT_MARKERS
    """Words that betray the guidance (matched as whole words, any case)."""


def leaks(text: str, hints: list[str], markers: list[str]) -> list[str]:
    """What in ``text`` betrays the hints: a hint's text, a mask token, a marker word."""
    found = [h for h in hints if h and h in text]
    found += sorted(set(re.findall(r"\[MASK\d*\]", text)))
    lowered = text.lower()
    found += [m for m in markers if re.search(rf"\b{re.escape(m.lower())}\w*\b", lowered)]
    return found


@register_op("hint_rewrite")
class HintRewrite(BaseOp):
    """Remove every trace of the path hints from the trajectories (verified)."""

    Params = HintRewriteParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        has_model = bool(build.spec.model or build.spec.models)
        self.agent: Agent | None = (
            build.agent(build.spec.template or "hint_rewrite", variables=("text", "hints"))
            if has_model
            else None
        )

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        hints = [str(h) for h in item.data.get(self.params.hints_field) or []]
        kept: list[Trace] = []
        drops: list[Drop] = []
        for trace in traces:
            messages, rewritten, leak = await self._clean(trace, hints, ctx)
            if leak:
                drops.append(Drop(trace, f"hint leak after rewrite: {', '.join(leak[:5])}", "hint leak"))
                continue
            meta = {**trace.meta, "messages": messages, "rewritten_turns": rewritten}
            clean = trace.model_copy(update={"meta": meta})
            ctx.trace_created(clean)
            kept.append(clean)
        return NodeOutput(traces=kept, drops=drops)

    async def _clean(
        self, trace: Trace, hints: list[str], ctx: AgentContext
    ) -> tuple[list[dict[str, Any]], int, list[str]]:
        messages = [dict(m) for m in trace.meta.get("messages") or []]
        head = trace.meta.get("clean_head")
        if isinstance(head, list):
            messages = [dict(m) for m in head] + messages[int(trace.meta.get("head_turns", len(head))) :]
        rewritten = 0
        leak: list[str] = []
        for message in messages:
            content = str(message.get("content") or "")
            if not leaks(content, hints, self.params.markers):
                continue
            if message.get("role") == "assistant" and self.agent is not None:
                texts, _ = await self.agent.call({"text": content, "hints": hints}, ctx)
                content = _LABEL.sub("", texts[0]).strip() if texts else ""
                message["content"] = content
                rewritten += 1
            leak += leaks(content, hints, self.params.markers)
        return messages, rewritten, leak
