"""The ``likelihood`` node: log-probability verifiers (``medloom.verifiers.likelihood``) give each
trace a verdict from the model's own token probabilities of the gold continuation.

``method: belief_shift`` passes a trace that raises the gold answer's log-probability by at least
``threshold`` nats over the question alone (ΔSePer-style); ``method: step_likelihood`` flags every
step that lowers the mean per-token log-probability of the gold continuation by more than
``flag_drop`` (P2S-style) and passes traces without flags. When the endpoint gives no prompt
log-probabilities the verdict says it cannot decide (and fails, or passes with ``undecided: pass``).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from medloom.agents.agent import ModelRef
from medloom.agents.context import AgentContext
from medloom.core.notes import NoteSchema, NoteView, register_note
from medloom.core.records import Item, Trace, Verdict
from medloom.nodes.kind import NodeBuild, NodeKind, NodeSpec, TemplateUse, register_kind
from medloom.nodes.protocol import NodeContext, NodeOutput
from medloom.verifiers.likelihood import (
    CONTEXT_TEMPLATE,
    CannotDecide,
    LikelihoodScorer,
    belief_shift,
    flagged_steps,
    gold_continuation,
    step_rewards,
)

LIKELIHOOD = "likelihood"
"""The note kind holding a trace's log-probability numbers."""


class LikelihoodNode(NodeSpec):
    type: Literal["likelihood"]
    model: str
    """A completion-mode model alias whose endpoint gives prompt log-probabilities (vLLM)."""
    method: Literal["belief_shift", "step_likelihood"] = "belief_shift"
    threshold: float = 0.0
    """belief_shift: the least rise, in nats, of the gold answer's log-probability to pass."""
    flag_drop: float = 0.5
    """step_likelihood: flag a step lowering the mean per-token log-probability by more than this."""
    reference: str | None = None
    """A field of the item's data with reference reasoning scored before the gold answer line."""
    template: str = CONTEXT_TEMPLATE
    undecided: Literal["fail", "pass"] = "fail"
    """What a trace gets when the endpoint cannot give prompt log-probabilities."""


class LikelihoodRun:
    def __init__(self, spec: LikelihoodNode, scorer: LikelihoodScorer):
        self.spec, self.scorer = spec, scorer

    async def judge(self, item: Item, trace: Trace, ctx: AgentContext) -> tuple[Verdict, dict[str, Any]]:
        spec = self.spec
        try:
            continuation = gold_continuation(item, spec.reference)
            n = len(trace.steps)
            counts = [0, n] if spec.method == "belief_shift" else list(range(n + 1))
            scores = await self.scorer.prefixes(item, trace.steps, continuation, ctx, counts)
        except CannotDecide as why:
            reason = f"cannot decide: {why}"
            verdict = Verdict(passed=spec.undecided == "pass", reasons=[reason], verifier=spec.method)
            return verdict, {"method": spec.method, "undecided": str(why)}
        data: dict[str, Any] = {
            "method": spec.method,
            "continuation": continuation,
            "logprobs": [round(s.total, 4) for s in scores],
            "tokens": [s.tokens for s in scores],
        }
        if spec.method == "belief_shift":
            shift = belief_shift(scores[-1], scores[0])
            passed = n > 0 and shift >= spec.threshold
            data |= {"shift": round(shift, 4), "threshold": spec.threshold}
            reason = (
                f"the trace moves log P(gold) from {scores[0].total:.3f} to {scores[-1].total:.3f} "
                f"(shift {shift:+.3f} nats, threshold {spec.threshold:+.3f})"
                if n
                else "the trace has no parsed steps to score"
            )
            return Verdict(passed=passed, score=shift, reasons=[reason], verifier=spec.method), data
        rewards = step_rewards(scores)
        flags = flagged_steps(rewards, spec.flag_drop)
        data |= {"means": [round(s.mean, 4) for s in scores], "rewards": [round(r, 4) for r in rewards]}
        data |= {"flagged": flags}
        step_flags = {
            k: f"lowers the gold continuation's mean log-probability by {-rewards[k - 1]:.3f} nats/token"
            for k in flags
        }
        score = 1.0 - len(flags) / n if n else 0.0
        reason = (
            f"{len(flags)} of {n} steps lower the gold continuation's likelihood by more than "
            f"{spec.flag_drop} nats/token (rewards {', '.join(f'{r:+.3f}' for r in rewards)})"
            if n
            else "the trace has no parsed steps to score"
        )
        verdict = Verdict(
            passed=n > 0 and not flags,
            score=score,
            step_flags=step_flags,
            reasons=[reason],
            verifier=spec.method,
        )
        return verdict, data

    async def run(self, item: Item, traces: list[Trace], ctx: NodeContext) -> NodeOutput:
        judged = await asyncio.gather(*(self.judge(item, t, ctx) for t in traces))
        out: list[Trace] = []
        for trace, (verdict, data) in zip(traces, judged, strict=True):
            ctx.note(LIKELIHOOD, data, trace_id=trace.id)
            meta: dict[str, Any] = {self.spec.method: data.get("shift", data.get("rewards"))}
            out.append(ctx.judged(trace, verdict, meta))
        return NodeOutput(traces=out)


@register_kind
class LikelihoodKind(NodeKind[LikelihoodNode]):
    tag = "likelihood"
    Spec = LikelihoodNode
    gives_verdicts = True

    def check(self, spec: LikelihoodNode, build: NodeBuild) -> None:
        if build.need_model(spec.model, "model") != "completion":
            raise build.fail(
                f"model '{spec.model}' is a chat model; log-probability verifiers score prompts through "
                "/v1/completions: give it `mode: completion` (a vLLM server)",
                "model",
            )
        super().check(spec, build)

    def templates(self, spec: LikelihoodNode) -> list[TemplateUse]:
        return [TemplateUse(spec.template, spec.model, "template", frozenset({"steps"}))]

    def describe(self, spec: LikelihoodNode) -> str:
        if spec.method == "belief_shift":
            return f"belief shift of the gold answer ≥ {spec.threshold} nats (model `{spec.model}`)"
        return f"step likelihood, flag drops > {spec.flag_drop} nats/token (model `{spec.model}`)"

    def build(self, spec: LikelihoodNode, build: NodeBuild) -> LikelihoodRun:
        ref = build.models.get(spec.model) or ModelRef(alias=spec.model, served=spec.model, mode="completion")
        scorer = LikelihoodScorer(
            build.client, ref, build.templates, name=f"{build.node}:{spec.method}", template=spec.template
        )
        return LikelihoodRun(spec, scorer)


@register_note(LIKELIHOOD)
class LikelihoodNote(NoteSchema):
    """``likelihood``: the log-probabilities behind a belief-shift or step-likelihood verdict."""

    def facets(self, data: dict[str, Any]) -> dict[str, int]:
        if "undecided" in data:
            return {"undecided": 1}
        return {"scored": 1, "flagged steps": len(data.get("flagged", []))}

    def view(self, data: dict[str, Any]) -> NoteView:
        method = str(data.get("method", "?"))
        if "undecided" in data:
            return NoteView(
                title=f"{method}: cannot decide",
                label=[(f"{method} ", "bold"), ("cannot decide", "yellow")],
                facts=[("why", [(str(data["undecided"]), "")])],
            )
        facts: list[tuple[str, list[tuple[str, str]]]] = [
            ("continuation", [(str(data.get("continuation", "")), "")]),
            ("log P by prefix", [(", ".join(f"{v:.3f}" for v in data.get("logprobs", [])), "")]),
        ]
        if "shift" in data:
            label = f"shift {data['shift']:+.3f} nats"
        else:
            label = f"{len(data.get('flagged', []))} flagged"
            facts.append(("step rewards", [(", ".join(f"{r:+.3f}" for r in data.get("rewards", [])), "")]))
        return NoteView(title=f"{method}", label=[(f"{method} ", "bold"), (label, "")], facts=facts)
