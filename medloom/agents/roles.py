"""The roles as protocols, and the generator and refiner built on an Agent."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from medloom.agents.agent import Agent, item_variables, trace_variables
from medloom.agents.context import AgentContext
from medloom.agents.parsing import parse_reasoning, parse_steps
from medloom.core.events import TraceRevised
from medloom.core.gather import gather_all
from medloom.core.records import Item, Revision, Step, Trace, Verdict


@runtime_checkable
class GeneratorRole(Protocol):
    """Makes traces for an item."""

    name: str

    async def generate(
        self, item: Item, ctx: AgentContext, *, inputs: list[Trace] | None = None
    ) -> list[Trace]: ...


@runtime_checkable
class VerifierRole(Protocol):
    """Judges a trace."""

    name: str

    async def verify(self, item: Item, trace: Trace, ctx: AgentContext) -> Verdict: ...


@runtime_checkable
class RefinerRole(Protocol):
    """Repairs what a verdict flagged."""

    name: str

    async def refine(
        self,
        item: Item,
        trace: Trace,
        verdict: Verdict,
        ctx: AgentContext,
        other_reasons: list[str] | None = None,
    ) -> Trace: ...


def make_trace(
    item: Item,
    text: str,
    *,
    trace_id: str,
    node: str,
    model: str | None,
    finish_reason: str | None = None,
    temperature: float | None = None,
    sample_index: int = 0,
) -> Trace:
    """A trace with its steps and answer parsed (a parse failure is recorded, not raised)."""
    steps, answer, error = parse_reasoning(text, item.options)
    return Trace(
        id=trace_id,
        item_id=item.id,
        node=node,
        model=model,
        text=text,
        steps=steps,
        answer=answer,
        parse_error=error,
        finish_reason=finish_reason,
        temperature=temperature,
        sample_index=sample_index,
    )


class Generator:
    """Samples ``samples`` traces at each temperature, ``n`` in one request."""

    def __init__(self, agent: Agent, *, samples: int = 1, temperatures: list[float] | None = None):
        self.agent = agent
        self.name = agent.name
        self.samples = samples
        self.temperatures = temperatures or [agent.sampling.temperature]

    async def _at(
        self, item: Item, temperature: float, ctx: AgentContext, inputs: list[Trace]
    ) -> list[Trace]:
        variables = {**item_variables(item), "inputs": inputs}
        texts, response = await self.agent.call(variables, ctx, n=self.samples, temperature=temperature)
        node = ctx.node or self.name
        traces = []
        for choice, text in zip(response.choices, texts, strict=True):
            trace = make_trace(
                item,
                text,
                trace_id=f"{item.id}/{node}/{self.agent.model.alias}/t{temperature:g}/{choice.index}",
                node=node,
                model=self.agent.model.served,
                finish_reason=choice.finish_reason,
                temperature=temperature,
                sample_index=choice.index,
            )
            ctx.trace_created(trace)
            traces.append(trace)
        return traces

    async def generate(
        self, item: Item, ctx: AgentContext | None = None, *, inputs: list[Trace] | None = None
    ) -> list[Trace]:
        """Traces for ``item``; ``inputs`` (traces routed into the node) reach the template."""
        ctx = ctx or AgentContext(item_id=item.id)
        batches = await gather_all(self._at(item, t, ctx, inputs or []) for t in self.temperatures)
        return [t for batch in batches for t in batch]


class Refiner:
    """Rewrites only the flagged steps of a trace (all steps when none are flagged)."""

    def __init__(self, agent: Agent):
        self.agent = agent
        self.name = agent.name

    async def refine(
        self,
        item: Item,
        trace: Trace,
        verdict: Verdict,
        ctx: AgentContext | None = None,
        other_reasons: list[str] | None = None,
    ) -> Trace:
        ctx = ctx or AgentContext(item_id=item.id)
        flagged = sorted(i for i in verdict.step_flags if any(s.index == i for s in trace.steps))
        if not flagged:
            flagged = [s.index for s in trace.steps] or [1]
        reason_for = dict(verdict.step_flags)
        flags: list[dict[str, Any]] = [
            {"index": i, "reason": reason_for.get(i) or verdict.reason or "marked wrong"} for i in flagged
        ]
        variables = {
            **item_variables(item),
            **trace_variables(trace),
            "flags": flags,
            "reasons": verdict.reasons,
            "other_reasons": other_reasons or [],
        }
        texts, response = await self.agent.call(variables, ctx)
        text = texts[0] if texts else ""
        new_steps = merge_steps(trace.steps, parse_steps(text), set(flagged))
        body = "\n".join(f"Step {s.index}: {s.text}" for s in new_steps)
        _, answer_in_fix, _ = parse_reasoning(text, item.options)
        # A fix that states no answer keeps the original one (the verifier judges it again).
        final_answer = answer_in_fix or trace.answer
        answer_line = f"\nAnswer: {final_answer}" if final_answer else ""
        merged_text = f"{body}{answer_line}"
        node = ctx.node or self.name
        new = make_trace(
            item,
            merged_text,
            trace_id=f"{trace.id}+r{trace.round + 1}",
            node=node,
            model=self.agent.model.served,
            finish_reason=response.choices[0].finish_reason if response.choices else None,
            temperature=trace.temperature,
            sample_index=trace.sample_index,
        )
        revision = Revision(
            round=trace.round + 1,
            node=node,
            flagged_steps=flagged,
            reasons=[str(f["reason"]) for f in flags],
            before=trace.text,
            after=merged_text,
        )
        new = new.model_copy(
            update={
                "round": trace.round + 1,
                "revisions": [*trace.revisions, revision],
                "verdicts": [],
                "meta": {**trace.meta, "revised_from": trace.id},
            }
        )
        ctx.send(
            TraceRevised(
                item_id=item.id,
                attempt=ctx.attempt,
                node=ctx.node,
                trace_id=trace.id,
                new_trace_id=new.id,
                revision=revision,
            )
        )
        ctx.trace_created(new)
        return new


def merge_steps(original: list[Step], rewritten: list[Step], flagged: set[int]) -> list[Step]:
    """Original steps with the flagged ones replaced by their rewrites.

    Rewritten steps past the original's last step are appended (a fix may need more steps);
    rewrites of unflagged steps are ignored.
    """
    by_index = {s.index: s for s in rewritten}
    merged = [by_index[s.index] if s.index in flagged and s.index in by_index else s for s in original]
    last = max((s.index for s in original), default=0)
    merged.extend(s for s in rewritten if s.index > last)
    return merged
