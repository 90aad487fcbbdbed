"""Quality ranking (ReasonMed): an LLM scores each trace 0–5 and the top ``k`` go on.

``op: quality_rank`` asks the node's model (template, e.g. ``reasonmed_rank``) for a
"Quality: N" line (or JSON ``{"score": N}``) per trace, stores the score in
``trace.meta["quality"]`` with the reason in ``meta["quality_reason"]``, and keeps the ``k``
best. Ties go to the trace refined fewer times, then to the lower trace id, so the choice is
deterministic. An unparseable rating counts as 0 and says so. The ranking is written to the
trajectory as a ``selection`` event.
"""

from __future__ import annotations

import asyncio
import re

from pydantic import Field

from medloom.agents.agent import item_variables, trace_variables
from medloom.agents.context import AgentContext
from medloom.agents.parsing import parse_json_object
from medloom.core.events import Selection
from medloom.core.records import Item, Trace
from medloom.nodes.protocol import Drop, NodeOutput
from medloom.nodes.step import BaseOp, OpBuild, OpParams, register_op

_SCORE = re.compile(r"(?:quality|score)\s*(?:score)?\s*[:=\-]\s*\**\s*(\d+(?:\.\d+)?)", re.I)
_REASON = re.compile(r"^\s*reason\s*[:\-]\s*(.+)$", re.I | re.M)


class QualityRankParams(OpParams):
    k: int = Field(default=2, ge=1)
    """How many traces to keep per item (ReasonMed: 2)."""
    min_score: float | None = Field(default=None, ge=0, le=5)
    """Also drop traces scored below this."""


def parse_quality(text: str) -> tuple[float | None, str]:
    """The 0–5 score and the reason in a rating (None when there is no score)."""
    obj = parse_json_object(text)
    value = obj.get("score", obj.get("quality")) if obj is not None else None
    if obj is not None and isinstance(value, int | float):
        return min(5.0, max(0.0, float(value))), str(obj.get("reason", ""))
    m = _SCORE.search(text)
    if m is None:
        return None, ""
    reason = _REASON.search(text)
    return min(5.0, float(m.group(1))), reason.group(1).strip() if reason else ""


@register_op("quality_rank")
class QualityRank(BaseOp):
    """Score every trace with an LLM and keep the best ``k``."""

    Params = QualityRankParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        self.agent = build.agent()

    async def score(self, item: Item, trace: Trace, ctx: AgentContext) -> Trace:
        texts, _ = await self.agent.call({**item_variables(item), **trace_variables(trace)}, ctx)
        score, reason = parse_quality(texts[0] if texts else "")
        if score is None:
            sample = (texts[0] if texts else "").strip().replace("\n", " ")[:120]
            score, reason = 0.0, f"rating unparseable ({sample!r}); counted as 0"
        return trace.model_copy(update={"meta": {**trace.meta, "quality": score, "quality_reason": reason}})

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        scored = await asyncio.gather(*(self.score(item, t, ctx) for t in traces))
        ranked = sorted(scored, key=lambda t: (-t.meta["quality"], t.round, t.id))
        p: QualityRankParams = self.params
        eligible = [t for t in ranked if p.min_score is None or t.meta["quality"] >= p.min_score]
        keep = eligible[: p.k]
        kept_ids = {t.id for t in keep}
        drops = []
        for t in ranked:
            if t.id in kept_ids:
                continue
            if p.min_score is not None and t.meta["quality"] < p.min_score:
                why = f"quality {t.meta['quality']:g} below {p.min_score:g}"
                drops.append(Drop(t, why, "low quality"))
            else:
                drops.append(Drop(t, f"quality {t.meta['quality']:g} not in the top {p.k}", "below top k"))
        ctx.send(
            Selection(
                item_id=item.id,
                attempt=ctx.attempt,
                node=ctx.node,
                method="quality_rank",
                selected=[t.id for t in keep],
                candidates=[t.id for t in traces],
                detail={"scores": {t.id: t.meta["quality"] for t in ranked}, "k": p.k},
            )
        )
        return NodeOutput(traces=keep, drops=drops)
