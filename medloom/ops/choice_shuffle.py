"""Medprompt's choice-shuffle ensemble and its majority vote.

``op: choice_shuffle`` asks the node's model the same question ``permutations`` times, each time
with the options in a different order (the first keeps the original order), and maps each
answer back to the original letter; ``op: majority_vote`` keeps one trace with the most
common answer. Shuffling cancels the model's position bias; the vote's agreement is a
confidence signal::

    shuffle:
      type: step
      op: choice_shuffle
      model: gen
      template: medprompt_cot
      sampling: {temperature: 0.0, max_tokens: 192}
      params: {permutations: 5, seed: 0}
    vote:
      type: step
      op: majority_vote
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import random
import string
from collections import Counter

from pydantic import Field

from medloom.agents.agent import item_variables
from medloom.agents.context import AgentContext
from medloom.agents.roles import make_trace
from medloom.core.records import Item, Trace
from medloom.nodes.protocol import Drop, NodeOutput
from medloom.nodes.step import BaseOp, OpBuild, OpParams, register_op


def permutations_for(letters: list[str], count: int, seed: str) -> list[list[str]]:
    """``count`` distinct orders of ``letters`` (fewer when there are not that many); the first is
    the original order; the rest are drawn deterministically from ``seed``."""
    total = math.factorial(len(letters))
    want = min(count, total)
    orders = [list(letters)]
    seen = {tuple(letters)}
    if total <= 720:  # small: draw from the full list, no rejection loop
        pool = [list(p) for p in itertools.permutations(letters) if p != tuple(letters)]
        rng = random.Random(seed)
        rng.shuffle(pool)
        return orders + pool[: want - 1]
    rng = random.Random(seed)
    while len(orders) < want:
        order = list(letters)
        rng.shuffle(order)
        if tuple(order) not in seen:
            seen.add(tuple(order))
            orders.append(order)
    return orders


def shuffled_item(item: Item, order: list[str]) -> tuple[Item, dict[str, str]]:
    """The item with its options presented in ``order`` under fresh letters A, B, ...; and the
    map shown letter → original letter. The gold answer is removed (a solver must not see it)."""
    assert item.options is not None
    shown = list(string.ascii_uppercase[: len(order)])
    back = dict(zip(shown, order, strict=True))
    options = {s: item.options[o] for s, o in back.items()}
    return item.model_copy(update={"options": options, "answer": None}), back


class ChoiceShuffleParams(OpParams):
    permutations: int = Field(default=5, ge=1)
    seed: int = 0
    temperature: float | None = None
    """Sampling temperature (default: the node's ``sampling.temperature``)."""


@register_op("choice_shuffle")
class ChoiceShuffle(BaseOp):
    Params = ChoiceShuffleParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        self.agent = build.agent(variables=())

    async def _one(
        self, item: Item, index: int, order: list[str], carried: dict[str, object], ctx: AgentContext
    ) -> Trace:
        view, back = shuffled_item(item, order)
        variables = item_variables(view)
        texts, response = await self.agent.call(variables, ctx, temperature=self.params.temperature)
        text = texts[0] if texts else ""
        parsed = make_trace(
            view,
            text,
            trace_id=f"{item.id}/{self.node}/p{index}",
            node=self.node,
            model=self.agent.model.served,
            finish_reason=response.choices[0].finish_reason if response.choices else None,
            temperature=self.params.temperature
            if self.params.temperature is not None
            else self.agent.sampling.temperature,
            sample_index=index,
        )
        original = back.get(parsed.answer) if parsed.answer else None
        trace = parsed.model_copy(
            update={
                "answer": original,
                "meta": {
                    **carried,
                    "permutation": index,
                    "order": order,
                    "shown_answer": parsed.answer,
                },
            }
        )
        ctx.trace_created(trace)
        return trace

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        if not item.options:
            return NodeOutput(reject="choice shuffle needs multiple-choice options", reject_code="no options")
        carried: dict[str, object] = {}
        for t in traces:
            carried.update(t.meta)
        seed = f"{self.params.seed}:{hashlib.sha256(item.id.encode()).hexdigest()[:16]}"
        orders = permutations_for(list(item.options), self.params.permutations, seed)
        out = await asyncio.gather(*(self._one(item, i, o, carried, ctx) for i, o in enumerate(orders)))
        return NodeOutput(traces=list(out))


def vote(traces: list[Trace]) -> tuple[str | None, dict[str, int]]:
    """The majority answer and the counts. A tie goes to the tied answer given first in trace
    order (for ``choice_shuffle``: the earliest permutation, the original order first)."""
    counts = Counter(t.answer for t in traces if t.answer is not None)
    if not counts:
        return None, {}
    top = max(counts.values())
    winner = next(t.answer for t in traces if t.answer is not None and counts[t.answer] == top)
    return winner, dict(sorted(counts.items()))


@register_op("majority_vote")
class MajorityVote(BaseOp):
    """Keeps the first trace with the majority answer; records ``votes`` and ``agreement``."""

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        ordered = sorted(traces, key=lambda t: (t.sample_index, t.id))
        winner, counts = vote(ordered)
        if winner is None:
            drops = [Drop(t, "no parsable answer to vote with", "no answer") for t in ordered]
            return NodeOutput(drops=drops)
        keep = next(t for t in ordered if t.answer == winner)
        answered = sum(counts.values())
        meta = {**keep.meta, "votes": counts, "agreement": round(counts[winner] / answered, 4)}
        losers = [
            Drop(t, f"outvoted: {winner} got {counts[winner]} of {answered} votes", "outvoted")
            for t in ordered
            if t is not keep
        ]
        return NodeOutput(traces=[keep.model_copy(update={"meta": meta})], drops=losers)
