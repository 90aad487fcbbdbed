"""Med-REFL: step-level reflection data as preference pairs.

``op: refl_locate`` finds the first wrong step of every trace whose answer is not the gold one. A
verifier's step flag (e.g. KG grounding on an item with a path) is used when there is one; otherwise
the node's model, shown the gold answer, names the first wrong step ``candidates`` times (4) and the
most named step wins (ties: the earlier step; nothing parseable: the last step, since the conclusion
is wrong). The location is written as a verdict with a step flag (so the ``prm`` export labels it)
and in ``trace.meta["first_error_step"]``; correct traces pass through untouched.

``op: refl_reflect`` asks the node's model, from the prefix before the wrong step, for ``candidates``
(6) reflections that notice the error, correct the step and continue to an answer. A candidate whose
answer is the gold one is a *reflected* trace; the share of such candidates is the corrected step's
value. Per item it records up to ``rejected_per_item`` wrong traces × ``chosen_per_rejected``
reflections as ``preference_pair`` notes of two kinds, which the ``dpo`` export reads:

- ``mid_reasoning``: the prefix + the corrected step (chosen) vs the prefix + the wrong step;
- ``post_reasoning``: the wrong solution + the reflection reaching gold (chosen) vs the wrong
  solution and its wrong conclusion.

The reflected traces go on (they become the run's rows); an item without any pair is rejected with
the reason.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from medloom.agents.agent import item_variables, trace_variables
from medloom.agents.context import AgentContext
from medloom.agents.parsing import parse_reasoning
from medloom.core.events import PREFERENCE_PAIR
from medloom.core.notes import NoteSchema, NoteView, register_note
from medloom.core.records import Item, Step, Trace, Verdict
from medloom.nodes.kind import TRACE_VARIABLES
from medloom.nodes.protocol import Drop, NodeOutput
from medloom.nodes.step import BaseOp, OpBuild, OpParams, register_op

_LOCATED = re.compile(r"first\s+wrong\s+step\s*[:\-]?\s*(?:step\s*)?(\d+)", re.I)
_NUMBER = re.compile(r"^\s*(?:step\s*)?(\d+)", re.I)
_REASON = re.compile(r"^\s*reason\s*[:\-]\s*(.+)$", re.I | re.M)
_CORRECTED = re.compile(r"^\s*corrected\s+step\s*(\d+)\s*[:\-]\s*(.+)$", re.I | re.M)
_REFLECTION = re.compile(r"reflection\s*:\s*(.*?)\s*(?=^\s*corrected\s+step)", re.I | re.M | re.S)


def is_wrong(item: Item, trace: Trace) -> bool:
    return item.answer is not None and trace.answer != item.answer


def parse_location(text: str, n_steps: int) -> tuple[int | None, str]:
    """The step a locator names (None when absent or out of range) and its reason."""
    m = _LOCATED.search(text) or _NUMBER.search(text)
    step = int(m.group(1)) if m else None
    reason = _REASON.search(text)
    return (step if step is not None and 1 <= step <= n_steps else None), (
        reason.group(1).strip() if reason else ""
    )


def first_flagged(trace: Trace) -> tuple[int, str] | None:
    """The earliest step a verifier flagged, with its reason."""
    flags = {i: why for v in trace.verdicts for i, why in v.step_flags.items()}
    if not flags:
        return None
    first = min(flags)
    return first, flags[first]


class LocateParams(OpParams):
    candidates: int = Field(default=4, ge=1, le=16)
    """How many times the locator names the first wrong step (Med-REFL: 4)."""


@register_op("refl_locate")
class ReflLocate(BaseOp):
    """Locate the first wrong step of every trace whose answer is not gold."""

    Params = LocateParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        self.agent = build.agent(variables=TRACE_VARIABLES)

    async def locate(self, item: Item, trace: Trace, ctx: AgentContext) -> Trace:
        flagged = first_flagged(trace)
        if flagged is not None:
            step, reason = flagged
            votes: dict[str, int] = {}
            source = "verifier flag"
        else:
            texts, _ = await self.agent.call(
                {**item_variables(item), **trace_variables(trace)}, ctx, n=self.params.candidates
            )
            located = [parse_location(t, len(trace.steps)) for t in texts]
            counts = Counter(s for s, _ in located if s is not None)
            if counts:
                step = max(counts, key=lambda s: (counts[s], -s))
                reason = next((r for s, r in located if s == step and r), "") or "named by the locator"
                source = f"locator ({counts[step]}/{len(texts)} votes)"
            else:
                step, reason = len(trace.steps), "the locator named no step; the conclusion is wrong"
                source = "fallback: last step"
            votes = {str(s): c for s, c in sorted(counts.items())}
        why = f"first wrong step ({source}): {reason}"
        verdict = Verdict(
            passed=False, step_flags={step: reason}, reasons=[why], verifier="refl_locate", node=self.node
        )
        ctx.verdict(trace.id, verdict)
        meta = {**trace.meta, "first_error_step": step, "error_reason": reason, "locate_votes": votes}
        return trace.model_copy(update={"verdicts": [*trace.verdicts, verdict], "meta": meta})

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        if item.answer is None:
            return NodeOutput(
                reject="the item has no gold answer to check steps against", reject_code="no gold"
            )
        wrong = [t for t in traces if is_wrong(item, t) and t.steps]
        located = await asyncio.gather(*(self.locate(item, t, ctx) for t in wrong))
        by_id = {t.id: t for t in located}
        return NodeOutput(traces=[by_id.get(t.id, t) for t in traces])


class ReflectParams(OpParams):
    candidates: int = Field(default=6, ge=1, le=32)
    """Reflections sampled per wrong trace (Med-REFL: 6)."""
    rejected_per_item: int = Field(default=2, ge=1)
    """Wrong traces per item that pairs are built from (Med-REFL: 2)."""
    chosen_per_rejected: int = Field(default=2, ge=1)
    """Reflections reaching gold paired with each wrong trace, per pair kind (Med-REFL: 2)."""


@dataclass
class Reflection:
    """One sampled reflection on a wrong trace."""

    text: str
    reflection: str
    corrected: str
    steps: list[Step]
    """The corrected path: prefix, corrected step, continuation."""
    answer: str | None


def parse_reflection(
    text: str, prefix: list[Step], step: int, options: dict[str, str] | None
) -> Reflection | None:
    """A reflection's parts, or None when it does not state a corrected step."""
    corrected = _CORRECTED.search(text)
    if corrected is None or not corrected.group(2).strip():
        return None
    reflection = _REFLECTION.search(text)
    rest = text[corrected.end() :]
    continuation, answer, _ = parse_reasoning(rest, options) if rest.strip() else ([], None, None)
    fixed = Step(index=step, text=corrected.group(2).strip())
    steps = [*prefix, fixed] + [
        Step(index=step + i, text=s.text) for i, s in enumerate(continuation, start=1)
    ]
    return Reflection(text, reflection.group(1).strip() if reflection else "", fixed.text, steps, answer)


def steps_block(steps: list[Step]) -> str:
    return "\n".join(f"Step {s.index}: {s.text}" for s in steps)


@register_op("refl_reflect")
class ReflReflect(BaseOp):
    """Reflect on each located error and record mid- and post-reasoning preference pairs."""

    Params = ReflectParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        self.agent = build.agent(
            variables=TRACE_VARIABLES | {"error_step", "error_reason", "prefix", "wrong_step"}
        )

    async def reflect(self, item: Item, trace: Trace, ctx: AgentContext) -> list[Reflection | None]:
        step = int(trace.meta["first_error_step"])
        variables = {
            **item_variables(item),
            **trace_variables(trace),
            "error_step": step,
            "error_reason": trace.meta.get("error_reason", ""),
            "prefix": trace.steps[: step - 1],
            "wrong_step": trace.steps[step - 1].text,
        }
        texts, _ = await self.agent.call(variables, ctx, n=self.params.candidates)
        return [parse_reflection(t, trace.steps[: step - 1], step, item.options) for t in texts]

    def not_reflected(self, item: Item, trace: Trace) -> Drop:
        if not is_wrong(item, trace):
            return Drop(trace, "answer matches gold: nothing to reflect on", "correct")
        if "first_error_step" not in trace.meta:
            return Drop(trace, "wrong answer without parsed steps: no step to reflect on", "no steps")
        limit = self.params.rejected_per_item
        return Drop(
            trace, f"beyond the {limit} wrong traces reflected on per item", "over the per-item limit"
        )

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        p: ReflectParams = self.params
        wrong = [t for t in traces if "first_error_step" in t.meta][: p.rejected_per_item]
        drops = [self.not_reflected(item, t) for t in traces if t not in wrong]
        if not wrong:
            return NodeOutput(
                drops=drops, reject="no wrong trace to reflect on", reject_code="no wrong trace"
            )
        sampled = await asyncio.gather(*(self.reflect(item, t, ctx) for t in wrong))
        kept: list[Trace] = []
        for trace, reflections in zip(wrong, sampled, strict=True):
            good = [r for r in reflections if r is not None and r.answer == item.answer]
            value = len(good) / len(reflections) if reflections else 0.0
            made = self.pairs(item, trace, good[: p.chosen_per_rejected], value, ctx)
            kept += made
            if not made:
                parsed = sum(r is not None for r in reflections)
                drops.append(
                    Drop(
                        trace,
                        f"no reflection reached the gold answer ({len(good)}/{len(reflections)}; "
                        f"{parsed} parseable)",
                        "no reflection reached gold",
                    )
                )
        if not kept:
            return NodeOutput(
                drops=drops,
                reject="no reflection reached the gold answer",
                reject_code="no reflection reached gold",
            )
        return NodeOutput(traces=kept, drops=drops)

    def pairs(
        self, item: Item, wrong: Trace, good: list[Reflection], value: float, ctx: AgentContext
    ) -> list[Trace]:
        step = int(wrong.meta["first_error_step"])
        prefix = steps_block(wrong.steps[: step - 1])
        wrong_solution = f"{steps_block(wrong.steps)}\nAnswer: {wrong.answer or '(none)'}"
        rejected_mid = "\n".join(p for p in (prefix, f"Step {step}: {wrong.steps[step - 1].text}") if p)
        reflected: list[Trace] = []
        for j, r in enumerate(good):
            reflection = f"Wait, step {step} is wrong. {r.reflection}".strip()
            text = f"{wrong_solution}\n{reflection}\n{steps_block(r.steps[step - 1 :])}\nAnswer: {r.answer}"
            trace = Trace(
                id=f"{wrong.id}/reflect{j + 1}",
                item_id=item.id,
                node=self.node,
                model=self.agent.model.served,
                text=text,
                steps=r.steps,
                answer=r.answer,
                temperature=self.agent.sampling.temperature,
                sample_index=j,
                meta={
                    "reflects_on": wrong.id,
                    "first_error_step": step,
                    "reflection": r.reflection,
                    "value": value,
                },
            )
            ctx.trace_created(trace)
            reaches_gold = Verdict(
                passed=True,
                reasons=[f"the reflection reaches the gold answer {item.answer}"],
                verifier="refl_gold",
                node=self.node,
            )
            ctx.verdict(trace.id, reaches_gold)
            trace = trace.model_copy(update={"verdicts": [reaches_gold]})
            reflected.append(trace)
            common: dict[str, Any] = {
                "chosen_trace_id": trace.id,
                "rejected_trace_id": wrong.id,
                "first_error_step": step,
                "value": value,
                "rejected_by": "refl_locate",
                "reason": f"step {step}: {wrong.meta.get('error_reason', '')}".strip(),
            }
            chosen_mid = "\n".join(p for p in (prefix, f"Step {step}: {r.corrected}") if p)
            for kind, chosen, rejected in (
                ("mid_reasoning", chosen_mid, rejected_mid),
                ("post_reasoning", text, wrong_solution),
            ):
                if " ".join(chosen.split()) == " ".join(rejected.split()):
                    continue
                data = {"kind": kind, "chosen": chosen, "rejected": rejected, **common}
                ctx.note(PREFERENCE_PAIR, data, trace_id=trace.id)
        return reflected


@register_note(PREFERENCE_PAIR)
class PreferencePairNote(NoteSchema):
    """``preference_pair``: a chosen and a rejected reply (Med-REFL's mid- or post-reasoning pair)."""

    def facets(self, data: dict[str, Any]) -> dict[str, int]:
        return {str(data.get("kind", "pair")): 1}

    def view(self, data: dict[str, Any]) -> NoteView:
        kind = str(data.get("kind", "pair"))
        value = data.get("value")
        shown = f"{value:.0%}" if isinstance(value, int | float) else "?"
        step = data.get("first_error_step", "?")
        return NoteView(
            title=f"preference pair ({kind})",
            label=[("pair ", "bold"), (f"{kind} at step {step} ", ""), (f"value {shown}", "green")],
            facts=[
                ("chosen", [(str(data.get("chosen_trace_id", "")), "green")]),
                ("rejected", [(str(data.get("rejected_trace_id", "")), "red")]),
                ("why", [(str(data.get("reason", "")), "")]),
                ("step value", [(f"{shown} of the reflections reached gold", "")]),
            ],
            lines=[
                [("chosen:", "bold green")],
                [(str(data.get("chosen", "")), "")],
                [("rejected:", "bold red")],
                [(str(data.get("rejected", "")), "")],
            ],
        )
