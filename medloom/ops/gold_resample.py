"""Gold-label resampling (Fully Open Meditron): sample a teacher until its answer matches gold.

``op: gold_resample`` passes on incoming traces whose answer already matches the gold answer;
when none does (or the step starts the graph), it samples the node's model one try at a time,
at most ``max_tries`` times, and stops at the first match. Each try uses its own seed, so
tries differ even with the request cache on and a resumed run repeats them exactly. An item
with no matching try is rejected ("no gold match").
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from medloom.agents.agent import Agent, item_variables
from medloom.agents.context import AgentContext
from medloom.agents.roles import make_trace
from medloom.core.events import Note
from medloom.core.notes import NoteSchema, NoteView, Segment, register_note
from medloom.core.records import Item, Trace
from medloom.nodes.protocol import Drop, NodeOutput
from medloom.nodes.step import BaseOp, OpBuild, OpParams, register_op


class GoldResampleParams(OpParams):
    max_tries: int = Field(default=8, ge=1, le=64)
    """Samples drawn at most per item (Meditron: 8)."""
    temperature: float = Field(default=0.7, ge=0)
    """Sampling temperature of every try (Meditron: 0.7)."""
    seed: int = 0
    """Try ``i`` uses seed ``seed + i``."""
    answer_regex: str | None = None
    """For free-text gold answers: group 1 (or the whole match) of this regex on the trace text
    is the answer; by default the parsed ``Answer:`` line is used."""

    @field_validator("answer_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"answer_regex does not compile: {exc}") from None
        return value


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


@register_op("gold_resample")
class GoldResample(BaseOp):
    """Resample until the answer matches gold; give up after ``max_tries``."""

    Params = GoldResampleParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        p: GoldResampleParams = self.params
        base = build.spec.sampling.model_copy(update={"temperature": p.temperature})
        self.agents: list[Agent] = [
            build.agent(sampling=base.model_copy(update={"seed": p.seed + i}), variables=())
            for i in range(p.max_tries)
        ]
        self.pattern = re.compile(p.answer_regex, re.I | re.S) if p.answer_regex else None

    def answer_of(self, item: Item, trace: Trace) -> str | None:
        if self.pattern is None or item.options:
            return trace.answer
        m = self.pattern.search(trace.text)
        if m is None:
            return None
        return (m.group(1) if m.groups() else m.group(0)).strip()

    def matches_gold(self, item: Item, trace: Trace) -> bool:
        answer = self.answer_of(item, trace)
        if answer is None or item.answer is None:
            return False
        if item.options:
            return answer == item.answer
        return _norm(answer) == _norm(item.answer)

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        if item.answer is None:
            return NodeOutput(reject="the item has no gold answer to resample against", reject_code="no gold")
        # Carrier traces (e.g. from an entry decontaminate step) only start this node.
        traces = [t for t in traces if not t.meta.get("carrier")]
        matching = [t for t in traces if self.matches_gold(item, t)]
        drops = [
            Drop(t, f"answer {self.answer_of(item, t)!r} is not the gold {item.answer!r}", "not gold")
            for t in traces
            if t not in matching
        ]
        if matching:
            return NodeOutput(traces=matching, drops=drops)
        tried: list[str | None] = []
        for i, agent in enumerate(self.agents):
            texts, response = await agent.call(item_variables(item), ctx)
            choice = response.choices[0] if response.choices else None
            trace = make_trace(
                item,
                texts[0] if texts else "",
                trace_id=f"{item.id}/{self.node}/try{i + 1}",
                node=self.node,
                model=agent.model.served,
                finish_reason=choice.finish_reason if choice else None,
                temperature=agent.sampling.temperature,
                sample_index=i,
            )
            answer = self.answer_of(item, trace)
            tried.append(answer)
            trace = trace.model_copy(update={"meta": {**trace.meta, "tries": i + 1}})
            ctx.trace_created(trace)
            if self.matches_gold(item, trace):
                ctx.send(self._note(item, ctx, trace.id, tried, matched=True))
                return NodeOutput(traces=[trace], drops=drops)
            drops.append(
                Drop(trace, f"try {i + 1}: answer {answer!r} is not the gold {item.answer!r}", "not gold")
            )
        ctx.send(self._note(item, ctx, None, tried, matched=False))
        return NodeOutput(
            drops=drops,
            reject=f"no answer matched the gold {item.answer!r} in {len(self.agents)} tries "
            f"(answers: {tried})",
            reject_code=f"no gold match in {len(self.agents)} tries",
        )

    def _note(
        self, item: Item, ctx: AgentContext, trace_id: str | None, tried: list[str | None], *, matched: bool
    ) -> Note:
        return Note(
            item_id=item.id,
            attempt=ctx.attempt,
            node=ctx.node,
            kind="resample",
            trace_id=trace_id,
            data={"matched": matched, "tries": len(tried), "answers": tried, "gold": item.answer},
        )


def _mark(ok: object) -> Segment:
    return ("✓", "green") if ok else ("✗", "red")


@register_note("resample")
class ResampleNote(NoteSchema):
    """``resample``: the answers of each try, the gold answer, whether one matched."""

    def facets(self, data: dict[str, Any]) -> dict[str, int]:
        matched = bool(data.get("matched"))
        return {"matched": int(matched), "no match": int(not matched), "tries": int(data.get("tries") or 0)}

    def view(self, data: dict[str, Any]) -> NoteView:
        gold = data.get("gold")
        answers = data.get("answers", [])
        shown = ", ".join("–" if a is None else str(a) for a in answers)
        tries: list[list[Segment]] = []
        for i, answer in enumerate(answers, 1):
            hit = answer is not None and str(answer).strip().lower() == str(gold).strip().lower()
            line: list[Segment] = [
                (f"try {i}: {'–' if answer is None else answer}", "bold green" if hit else "")
            ]
            tries.append([*line, (" ✓ gold", "green")] if hit else line)
        mark, style = _mark(data.get("matched"))
        verdict = f"matched gold at try {data.get('tries')}" if data.get("matched") else "no gold match"
        return NoteView(
            title="gold resampling",
            label=[("resample ", "bold"), (f"{shown} → gold {gold} ", ""), (mark, style)],
            facts=[("gold", [(str(gold), "")]), ("result", [(f"{mark} {verdict}", style)])],
            lines=tries,
        )
