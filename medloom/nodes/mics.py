"""The ``mics`` node: mentor–intern collaborative search for a reasoning path (MICS).

At each depth every mentor continues the accepted prefix to a final answer; its first new step is
its *proposal*. Every intern then continues from the prefix plus that step at each of the node's
temperatures (2 by default), and the scorer check (``mcq_answer``) grades the interns' answers: a
step's score is ``correct / (temperatures × interns)``. A step scoring 1.0 ends the search with that
mentor's whole chain accepted; all steps scoring 0 end it as a failure (the item is rejected);
otherwise the best step (ties: the earlier mentor) is appended to the prefix and the search goes on,
up to ``max_depth``. At ``max_depth`` the best mentor's chain goes on marked ``max_depth`` (or the
item is rejected with ``at_max_depth: reject``).

Every depth writes a ``mics_depth`` note (the prefix, each proposal with its score and the
interns' answers, and the choice), so the trajectory holds the whole search tree.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from medloom.agents.agent import Agent, Sampling, item_variables
from medloom.agents.parsing import parse_reasoning
from medloom.core.notes import NoteSchema, NoteView, register_note
from medloom.core.records import Item, Step, Trace
from medloom.core.registry import REGISTRY, UnknownName
from medloom.nodes.kind import NodeBuild, NodeKind, NodeSpec, TemplateUse, register_kind
from medloom.nodes.protocol import NodeContext, NodeOutput
from medloom.verifiers.base import Check

MICS_DEPTH = "mics_depth"
"""The note kind of one search depth (``data``: ``depth``, ``prefix``, ``proposals``, ``chosen``,
``outcome``)."""

Outcome = Literal["accepted", "failed", "continue", "max_depth"]


class MicsNode(NodeSpec):
    type: Literal["mics"]
    mentors: list[str] = Field(min_length=2)
    """Model aliases that propose the next step (at least 2)."""
    interns: list[str] = Field(min_length=1)
    """Model aliases that test a proposed step by finishing the reasoning from it."""
    template: str = "mics_continue"
    """Continues ``prefix`` (the steps so far) to a final answer; mentors and interns share it."""
    intern_template: str | None = None
    """The interns' template when it differs from the mentors'."""
    temperatures: list[float] = Field(default_factory=lambda: [0.7, 1.0], min_length=1)
    """Each intern samples once at every temperature (MICS: 2)."""
    max_depth: int = Field(default=3, ge=1, le=16)
    scorer: str = "mcq_answer"
    """The check (by name) that grades an intern's answer against gold."""
    at_max_depth: Literal["keep", "reject"] = "keep"
    mentor_sampling: Sampling = Field(default_factory=lambda: Sampling(temperature=0.7, max_tokens=256))
    intern_sampling: Sampling = Field(default_factory=lambda: Sampling(max_tokens=256))


@dataclass
class Proposal:
    """One mentor's continuation of the prefix and what the interns made of its first step."""

    mentor: str
    model: str
    text: str
    chain: list[Step]
    """The mentor's new steps (renumbered after the prefix)."""
    answer: str | None
    intern_answers: list[str | None] = field(default_factory=list)
    correct: int = 0

    @property
    def step(self) -> Step | None:
        return self.chain[0] if self.chain else None

    def score(self, trials: int) -> float:
        return self.correct / trials if trials else 0.0


def decide(scores: list[float], depth: int, max_depth: int) -> tuple[Outcome, int | None]:
    """The outcome of one depth and the index of the chosen proposal (None on failure)."""
    if not scores or all(s == 0.0 for s in scores):
        return "failed", None
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    if scores[best] >= 1.0:
        return "accepted", best
    return ("max_depth" if depth >= max_depth else "continue"), best


def seeded(sampling: Sampling, index: int) -> Sampling:
    """The sampling of the ``index``-th mentor (or intern): its own seed, so aliases of one served
    model send different requests (the same request would come back from the cache unchanged)."""
    return sampling.model_copy(update={"seed": (sampling.seed or 0) + index})


def renumber(steps: list[Step], start: int) -> list[Step]:
    return [Step(index=start + i, text=s.text) for i, s in enumerate(steps)]


class MicsRun:
    """The search for one item (an entry node: it starts from the item alone)."""

    def __init__(
        self,
        node: str,
        spec: MicsNode,
        mentors: list[Agent],
        interns: list[Agent],
        scorer: Check,
    ):
        self.node, self.spec, self.mentors, self.interns, self.scorer = node, spec, mentors, interns, scorer

    @property
    def trials(self) -> int:
        return len(self.interns) * len(self.spec.temperatures)

    async def propose(self, item: Item, prefix: list[Step], mentor: Agent, ctx: NodeContext) -> Proposal:
        texts, _ = await mentor.call({**item_variables(item), "prefix": prefix}, ctx)
        steps, answer, _ = parse_reasoning(texts[0], item.options)
        return Proposal(
            mentor.model.alias, mentor.model.served, texts[0], renumber(steps, len(prefix) + 1), answer
        )

    async def grade(self, item: Item, prefix: list[Step], proposal: Proposal, ctx: NodeContext) -> None:
        if proposal.step is None:
            return  # nothing to test: the proposal scores 0
        variables = {**item_variables(item), "prefix": [*prefix, proposal.step]}
        calls = [
            intern.call(variables, ctx, temperature=t)
            for intern in self.interns
            for t in self.spec.temperatures
        ]
        for texts, _ in await asyncio.gather(*calls):
            _, answer, error = parse_reasoning(texts[0], item.options)
            probe = Trace(
                id="probe", item_id=item.id, node=self.node, text=texts[0], answer=answer, parse_error=error
            )
            proposal.intern_answers.append(answer)
            proposal.correct += self.scorer.check(item, probe).passed

    async def run(self, item: Item, traces: list[Trace], ctx: NodeContext) -> NodeOutput:
        if item.answer is None:
            return NodeOutput(reject="MICS needs a gold answer to score steps", reject_code="no gold")
        prefix: list[Step] = []
        for depth in range(1, self.spec.max_depth + 1):
            proposals = await asyncio.gather(*(self.propose(item, prefix, m, ctx) for m in self.mentors))
            await asyncio.gather(*(self.grade(item, prefix, p, ctx) for p in proposals))
            scores = [p.score(self.trials) for p in proposals]
            outcome, best = decide(scores, depth, self.spec.max_depth)
            self.note(item, ctx, depth, prefix, proposals, outcome, best)
            if best is None:
                return NodeOutput(
                    reject=f"every mentor's step scored 0 at depth {depth} (interns never reached gold)",
                    reject_code="mics: all steps scored 0",
                )
            chosen = proposals[best]
            if outcome == "continue":
                assert chosen.step is not None
                prefix = [*prefix, chosen.step]
                continue
            if outcome == "max_depth" and self.spec.at_max_depth == "reject":
                return NodeOutput(
                    reject=f"no step reached score 1.0 within max_depth {self.spec.max_depth} "
                    f"(best {scores[best]:.2f})",
                    reject_code="mics: max depth",
                )
            return NodeOutput(traces=[self.trace(item, ctx, prefix, chosen, outcome, depth, scores[best])])
        raise AssertionError("unreachable: the last depth always ends the search")

    def trace(
        self,
        item: Item,
        ctx: NodeContext,
        prefix: list[Step],
        chosen: Proposal,
        outcome: Outcome,
        depth: int,
        score: float,
    ) -> Trace:
        steps = [*prefix, *chosen.chain]
        lines = [f"Step {s.index}: {s.text}" for s in steps]
        text = "\n".join([*lines, f"Answer: {chosen.answer}" if chosen.answer else ""]).strip()
        trace = Trace(
            id=f"{item.id}/{self.node}/d{depth}/{chosen.mentor}",
            item_id=item.id,
            node=self.node,
            model=chosen.model,
            text=text,
            steps=steps,
            answer=chosen.answer,
            parse_error=None if chosen.answer else "the mentor's chain gives no answer",
            meta={
                "mics_outcome": outcome,
                "mics_depth": depth,
                "mics_score": score,
                "mics_mentor": chosen.mentor,
            },
        )
        ctx.trace_created(trace)
        return trace

    def note(
        self,
        item: Item,
        ctx: NodeContext,
        depth: int,
        prefix: list[Step],
        proposals: list[Proposal],
        outcome: Outcome,
        best: int | None,
    ) -> None:
        data: dict[str, Any] = {
            "depth": depth,
            "prefix": [s.text for s in prefix],
            "proposals": [
                {
                    "mentor": p.mentor,
                    "step": p.step.text if p.step else None,
                    "chain": [s.text for s in p.chain],
                    "answer": p.answer,
                    "intern_answers": p.intern_answers,
                    "score": p.score(self.trials),
                }
                for p in proposals
            ],
            "chosen": proposals[best].mentor if best is not None else None,
            "outcome": outcome,
        }
        ctx.note(MICS_DEPTH, data)


@register_kind
class MicsKind(NodeKind[MicsNode]):
    tag = "mics"
    Spec = MicsNode
    can_start = True
    in_loops = False

    def check(self, spec: MicsNode, build: NodeBuild) -> None:
        for role, aliases in (("mentors", spec.mentors), ("interns", spec.interns)):
            template = spec.template if role == "mentors" else spec.intern_template or spec.template
            for i, alias in enumerate(aliases):
                build.need_template(template, alias, "template", f"{role}.{i}")
        try:
            REGISTRY.get("check", spec.scorer).from_params({}, build.graph.resources)
        except UnknownName as exc:
            raise build.fail(str(exc), "scorer") from None

    def templates(self, spec: MicsNode) -> list[TemplateUse]:
        intern = spec.intern_template or spec.template
        return [TemplateUse(spec.template, a, "template", frozenset({"prefix"})) for a in spec.mentors] + [
            TemplateUse(intern, a, "template", frozenset({"prefix"})) for a in spec.interns
        ]

    def describe(self, spec: MicsNode) -> str:
        return (
            f"MICS search: mentors {spec.mentors}, interns {spec.interns} at {spec.temperatures}, "
            f"scorer `{spec.scorer}`, depth ≤ {spec.max_depth}"
        )

    def build(self, spec: MicsNode, build: NodeBuild) -> MicsRun:
        intern_template = spec.intern_template or spec.template
        mentors = [
            build.make_agent(f"mentor:{a}", a, spec.template, seeded(spec.mentor_sampling, i))
            for i, a in enumerate(spec.mentors)
        ]
        interns = [
            build.make_agent(f"intern:{a}", a, intern_template, seeded(spec.intern_sampling, i))
            for i, a in enumerate(spec.interns)
        ]
        scorer = REGISTRY.get("check", spec.scorer).from_params({}, build.graph.resources)
        return MicsRun(build.node, spec, mentors, interns, scorer)


@register_note(MICS_DEPTH)
class MicsDepthNote(NoteSchema):
    """``mics_depth``: one depth of the search: each mentor's step, its intern score, the choice."""

    def facets(self, data: dict[str, Any]) -> dict[str, int]:
        return {"depths": 1, str(data.get("outcome", "?")): 1}

    def view(self, data: dict[str, Any]) -> NoteView:
        outcome = str(data.get("outcome", "?"))
        chosen = data.get("chosen")
        style = {"accepted": "green", "failed": "red"}.get(outcome, "yellow")
        rows: list[list[list[tuple[str, str]]]] = []
        for p in data.get("proposals", []):
            mark = "bold green" if p.get("mentor") == chosen else ""
            answers = ", ".join(str(a) for a in p.get("intern_answers", []))
            rows.append(
                [
                    [(str(p.get("mentor")), mark)],
                    [(f"{float(p.get('score', 0.0)):.2f}", mark)],
                    [(str(p.get("step") or "(no step)"), "")],
                    [(answers, "")],
                ]
            )
        prefix = data.get("prefix", [])
        return NoteView(
            title=f"MICS depth {data.get('depth')}",
            label=[("mics ", "bold"), (f"depth {data.get('depth')} ", ""), (outcome, style)]
            + ([(f" → {chosen}", "")] if chosen else []),
            facts=[
                ("prefix", [(" | ".join(prefix) if prefix else "(none)", "")]),
                ("chosen", [(str(chosen or "none"), style)]),
            ],
            table=(["mentor", "score", "proposed step", "intern answers"], rows),
        )
