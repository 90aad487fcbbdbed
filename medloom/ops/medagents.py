"""MedAgents (multi-disciplinary consensus) as four step ops.

- ``medagents_domains`` (starts the graph): the model names the fields of the experts who
  analyse the question (5) and the options (2); stored in ``item.data["medagents"]``.
- ``medagents_experts``: each question expert analyses the question, each option expert the
  options (seeing the question analyses); one trace per expert, then a synthesised report.
- ``medagents_vote``: every expert votes yes/no on the report; when anyone dissents, the report
  is revised with the dissenters' advice and voted on again, at most ``max_rounds`` rounds. After
  the last round a majority decides; a tie is broken by the chair (the first question expert,
  the field the classifier ranked first). ``require`` sets which outcomes go on. Every round is a
  ``note`` event (votes, advice, outcome) and every revision a ``revision`` event.
- ``medagents_decide``: a decision maker answers the question from the final report.

Votes and decisions use the node's sampling (MedAgents: temperature 0). An unparseable vote
counts as a dissent, so it cannot make a consensus that was not there.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from medloom.agents.agent import Agent, item_variables
from medloom.agents.context import AgentContext
from medloom.agents.roles import make_trace
from medloom.core.events import TraceRevised
from medloom.core.notes import NoteSchema, NoteView, Segment, register_note
from medloom.core.records import Item, Revision, Trace
from medloom.nodes.protocol import NodeOutput
from medloom.nodes.step import BaseOp, OpBuild, OpParams, register_op

GENERAL_FIELDS = (
    "Internal Medicine",
    "Pharmacology",
    "Pathology",
    "Physiology",
    "General Surgery",
    "Pediatrics",
    "Obstetrics and Gynecology",
)
"""Fields that pad a classifier's list when it names too few usable ones (recorded in a note)."""

_FIELD = re.compile(r"^[A-Za-z][A-Za-z &/'-]{2,48}$")
_LABEL = re.compile(r"^\s*(?:fields?|report|revised report|analysis)\s*:\s*", re.I)
_VOTE = re.compile(r"^\W*(?:vote\s*[:\-]\s*)?\**\s*(yes|no|agree|disagree)\b", re.I)
_ADVICE = re.compile(r"(?:advice|reason)\s*[:\-]\s*(.+)", re.I)


def _strip_label(text: str) -> str:
    return _LABEL.sub("", text.strip()).strip()


def parse_fields(text: str) -> list[str]:
    """Field names from a classifier's reply: comma, semicolon or line separated, numbered or not."""
    first_block = _strip_label(text).split("\n\n", 1)[0]
    names: list[str] = []
    for part in re.split(r"[,;\n]", first_block):
        name = re.sub(r"^\s*(?:\d+[.)]|[-*•])\s*", "", part).strip().strip(".").strip()
        name = re.sub(r"^(?:and|or)\s+", "", name, flags=re.I)
        if _FIELD.match(name) and len(name.split()) <= 5 and name.lower() not in {n.lower() for n in names}:
            names.append(name)
    return names


def parse_vote(text: str) -> tuple[bool | None, str]:
    """(agrees, advice); agrees is None when the reply holds no yes/no."""
    body = _strip_label(text)
    m = _VOTE.search(body)
    advice_m = _ADVICE.search(body)
    advice = advice_m.group(1).strip() if advice_m else ""
    if m is None:
        return None, advice
    return m.group(1).lower() in ("yes", "agree"), advice


class Vote(BaseModel):
    expert: str
    agrees: bool
    advice: str = ""
    parsed: bool = True


def experts_of(item: Item) -> list[str]:
    info = item.data.get("medagents") or {}
    return [*info.get("question_domains", []), *info.get("option_domains", [])]


class DomainsParams(OpParams):
    question_experts: int = Field(default=5, ge=1, le=10)
    option_experts: int = Field(default=2, ge=0, le=10)


@register_op("medagents_domains")
class MedAgentsDomains(BaseOp):
    """Classify the question into the fields of its question and option experts."""

    Params = DomainsParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        self.agent = build.agent(build.spec.template or "medagents_domains", variables=("about", "count"))

    async def fields(
        self, item: Item, about: str, count: int, ctx: AgentContext
    ) -> tuple[list[str], list[str]]:
        if count == 0:
            return [], []
        texts, _ = await self.agent.call({**item_variables(item), "about": about, "count": count}, ctx)
        named = parse_fields(texts[0] if texts else "")[:count]
        padding = [f for f in GENERAL_FIELDS if f.lower() not in {n.lower() for n in named}]
        padded = padding[: count - len(named)]
        return named + padded, padded

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        p: DomainsParams = self.params
        (q, q_pad), (o, o_pad) = await asyncio.gather(
            self.fields(item, "question", p.question_experts, ctx),
            self.fields(item, "options", p.option_experts, ctx),
        )
        info = {"question_domains": q, "option_domains": o}
        ctx.note("domains", {**info, "padded": q_pad + o_pad})
        trace = Trace(
            id=f"{item.id}/{self.node}",
            item_id=item.id,
            node=self.node,
            text="Question experts: " + ", ".join(q) + "\nOption experts: " + ", ".join(o),
            meta={"carrier": True},
        )
        return NodeOutput(
            traces=[trace], item=item.model_copy(update={"data": {**item.data, "medagents": info}})
        )


class ExpertsParams(OpParams):
    question_template: str = "medagents_question_expert"
    option_template: str = "medagents_option_expert"
    report_template: str = "medagents_report"


@register_op("medagents_experts")
class MedAgentsExperts(BaseOp):
    """Question and option experts analyse the item; their analyses become one report."""

    Params = ExpertsParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        p: ExpertsParams = self.params
        self.question_agent = build.agent(
            p.question_template,
            name=f"{self.node}:question_expert",
            variables=("domain",),
            key="params.question_template",
        )
        self.option_agent = build.agent(
            p.option_template,
            name=f"{self.node}:option_expert",
            variables=("domain", "analyses"),
            key="params.option_template",
        )
        self.report_agent = build.agent(
            p.report_template,
            name=f"{self.node}:report",
            variables=("question_analyses", "option_analyses"),
            key="params.report_template",
        )

    def _trace(self, item: Item, suffix: str, text: str, ctx: AgentContext, **meta: Any) -> Trace:
        trace = Trace(
            id=f"{item.id}/{self.node}/{suffix}", item_id=item.id, node=self.node, text=text, meta=meta
        )
        ctx.trace_created(trace)
        return trace

    async def _analyse(self, agent: Agent, item: Item, domain: str, ctx: AgentContext, **extra: Any) -> str:
        texts, _ = await agent.call({**item_variables(item), "domain": domain, **extra}, ctx)
        return _strip_label(texts[0] if texts else "")

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        info = item.data.get("medagents") or {}
        q_domains: list[str] = info.get("question_domains", [])
        o_domains: list[str] = info.get("option_domains", [])
        if not q_domains:
            return NodeOutput(
                reject="no question experts: put a medagents_domains step before this one",
                reject_code="no experts",
            )
        q_texts = await asyncio.gather(*(self._analyse(self.question_agent, item, d, ctx) for d in q_domains))
        q_analyses = [{"domain": d, "analysis": t} for d, t in zip(q_domains, q_texts, strict=True)]
        o_texts = await asyncio.gather(
            *(self._analyse(self.option_agent, item, d, ctx, analyses=q_analyses) for d in o_domains)
        )
        o_analyses = [{"domain": d, "analysis": t} for d, t in zip(o_domains, o_texts, strict=True)]
        for i, a in enumerate(q_analyses):
            self._trace(item, f"question/{i}", a["analysis"], ctx, domain=a["domain"], role="question expert")
        for i, a in enumerate(o_analyses):
            self._trace(item, f"options/{i}", a["analysis"], ctx, domain=a["domain"], role="option expert")
        texts, _ = await self.report_agent.call(
            {**item_variables(item), "question_analyses": q_analyses, "option_analyses": o_analyses}, ctx
        )
        report = _strip_label(texts[0] if texts else "")
        if not report:
            return NodeOutput(reject="the report synthesiser returned no text", reject_code="empty report")
        analyses = [{**a, "role": "question expert"} for a in q_analyses] + [
            {**a, "role": "option expert"} for a in o_analyses
        ]
        trace = self._trace(item, "report", report, ctx, report=report, analyses=analyses)
        return NodeOutput(traces=[trace])


class VoteParams(OpParams):
    max_rounds: int = Field(default=3, ge=1, le=10)
    """Voting rounds at most (MedAgents: 3); a revision follows every round but the last."""
    require: Literal["unanimous", "majority", "none"] = "majority"
    """What lets the report go on after the last round (``none``: always, as in MedAgents)."""
    revise_template: str = "medagents_revise"


@register_op("medagents_vote")
class MedAgentsVote(BaseOp):
    """Experts vote on the report; dissent triggers a revision; bounded rounds; ties go to the chair."""

    Params = VoteParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        self.vote_agent = build.agent(
            build.spec.template or "medagents_vote", name=f"{self.node}:vote", variables=("domain", "report")
        )
        self.revise_agent = build.agent(
            self.params.revise_template,
            name=f"{self.node}:revise",
            variables=("report", "advice"),
            key="params.revise_template",
        )

    async def _vote(self, item: Item, expert: str, report: str, ctx: AgentContext) -> Vote:
        texts, _ = await self.vote_agent.call(
            {**item_variables(item), "domain": expert, "report": report}, ctx
        )
        agrees, advice = parse_vote(texts[0] if texts else "")
        if agrees is None:
            sample = (texts[0] if texts else "").strip().replace("\n", " ")[:80]
            return Vote(
                expert=expert, agrees=False, advice=advice or f"no usable vote ({sample!r})", parsed=False
            )
        return Vote(expert=expert, agrees=agrees, advice=advice)

    @staticmethod
    def outcome(votes: list[Vote], chair: str) -> tuple[str, bool]:
        """(outcome, accepted by majority) for the final round; a tie follows the chair's vote."""
        yes = sum(v.agrees for v in votes)
        no = len(votes) - yes
        if no == 0:
            return "unanimous", True
        if yes != no:
            return ("majority yes" if yes > no else "majority no"), yes > no
        chair_vote = next((v.agrees for v in votes if v.expert == chair), False)
        return f"tie broken by chair ({chair}: {'yes' if chair_vote else 'no'})", chair_vote

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        experts = experts_of(item)
        if not experts:
            return NodeOutput(
                reject="no experts to vote: run medagents_domains first", reject_code="no experts"
            )
        out: list[Trace] = []
        for trace in traces:
            result = await self._consensus(item, trace, experts, ctx)
            if isinstance(result, str):
                return NodeOutput(reject=result, reject_code="no consensus")
            out.append(result)
        return NodeOutput(traces=out)

    async def _consensus(
        self, item: Item, trace: Trace, experts: list[str], ctx: AgentContext
    ) -> Trace | str:
        p: VoteParams = self.params
        report = trace.text
        current = trace
        history: list[dict[str, Any]] = []
        votes: list[Vote] = []
        for rnd in range(1, p.max_rounds + 1):
            votes = list(await asyncio.gather(*(self._vote(item, e, report, ctx) for e in experts)))
            dissent = [v for v in votes if not v.agrees]
            entry: dict[str, Any] = {"round": rnd, "votes": [v.model_dump() for v in votes]}
            if dissent and rnd < p.max_rounds:
                revised = await self._revise(item, report, dissent, ctx)
                entry["revised"] = True
                new = current.model_copy(
                    update={
                        "id": f"{trace.id}+v{rnd}",
                        "text": revised,
                        "round": rnd,
                        "revisions": [
                            *current.revisions,
                            Revision(
                                round=rnd,
                                node=self.node,
                                flagged_steps=[],
                                reasons=[f"{v.expert}: {v.advice}" for v in dissent],
                                before=report,
                                after=revised,
                            ),
                        ],
                    }
                )
                ctx.send(
                    TraceRevised(
                        item_id=item.id,
                        attempt=ctx.attempt,
                        node=ctx.node,
                        trace_id=current.id,
                        new_trace_id=new.id,
                        revision=new.revisions[-1],
                    )
                )
                current, report = new, revised
            entry["outcome"] = (
                "consensus" if not dissent else ("revised" if entry.get("revised") else "final")
            )
            history.append(entry)
            ctx.note("vote_round", entry, trace_id=current.id)
            if not dissent:
                break
        outcome, majority = self.outcome(votes, chair=experts[0])
        accepted = {"unanimous": outcome == "unanimous", "majority": majority, "none": True}[p.require]
        outcome_data = {
            "outcome": outcome,
            "rounds": len(history),
            "accepted": accepted,
            "require": p.require,
        }
        ctx.note("vote_outcome", outcome_data, trace_id=current.id)
        if not accepted:
            return f"no {p.require} agreement after {len(history)} voting rounds ({outcome})"
        meta = {
            **current.meta,
            "report": report,
            "vote_outcome": outcome,
            "vote_rounds": len(history),
            "votes": history,
        }
        return current.model_copy(update={"meta": meta})

    async def _revise(self, item: Item, report: str, dissent: list[Vote], ctx: AgentContext) -> str:
        advice = [{"domain": v.expert, "advice": v.advice} for v in dissent]
        texts, _ = await self.revise_agent.call(
            {**item_variables(item), "report": report, "advice": advice}, ctx
        )
        revised = _strip_label(texts[0] if texts else "")
        return revised or report


@register_op("medagents_decide")
class MedAgentsDecide(BaseOp):
    """A decision maker answers from the final report; the row's reasoning is the report."""

    def __init__(self, build: OpBuild):
        super().__init__(build)
        self.agent = build.agent(build.spec.template or "medagents_decide", variables=("report",))

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        out: list[Trace] = []
        for trace in traces:
            report = str(trace.meta.get("report", trace.text))
            texts, response = await self.agent.call({**item_variables(item), "report": report}, ctx)
            decision = make_trace(item, texts[0] if texts else "", trace_id="-", node=self.node, model=None)
            answer = decision.answer
            text = f"{report}\nAnswer: {answer}" if answer else report
            new = make_trace(
                item,
                text,
                trace_id=f"{trace.id}/decision",
                node=self.node,
                model=self.agent.model.served,
                finish_reason=response.choices[0].finish_reason if response.choices else None,
                temperature=self.agent.sampling.temperature,
            )
            new = new.model_copy(
                update={
                    "round": trace.round,
                    "revisions": trace.revisions,
                    "meta": {**trace.meta, "decision": texts[0] if texts else ""},
                }
            )
            ctx.trace_created(new)
            out.append(new)
        return NodeOutput(traces=out)


def _mark(ok: object) -> Segment:
    return ("✓", "green") if ok else ("✗", "red")


def _votes(data: dict[str, Any]) -> list[dict[str, Any]]:
    votes = data.get("votes")
    return [v for v in votes if isinstance(v, dict)] if isinstance(votes, list) else []


def _plain(text: object) -> list[Segment]:
    return [(str(text), "")]


@register_note("domains")
class DomainsNote(NoteSchema):
    """``domains``: the question and option experts, and the fields that padded a short list."""

    def facets(self, data: dict[str, Any]) -> dict[str, int]:
        return {"padded fields": len(data.get("padded") or [])} if data.get("padded") else {}

    def view(self, data: dict[str, Any]) -> NoteView:
        experts = [*data.get("question_domains", []), *data.get("option_domains", [])]
        padded = data.get("padded") or []
        return NoteView(
            title="expert fields",
            label=[("experts ", "bold"), (", ".join(map(str, experts)), "")],
            facts=[
                ("question experts", _plain(", ".join(map(str, data.get("question_domains", []))))),
                ("option experts", _plain(", ".join(map(str, data.get("option_domains", []))))),
                (
                    "padded",
                    _plain(", ".join(map(str, padded)) + " (the model named too few)" if padded else "none"),
                ),
            ],
        )


REVISED = "revised with the dissenters' advice"


@register_note("vote_round")
class VoteRoundNote(NoteSchema):
    """``vote_round``: each expert's vote and advice, and whether the report was revised."""

    def facets(self, data: dict[str, Any]) -> dict[str, int]:
        return {"revised": 1} if data.get("revised") else {}

    def view(self, data: dict[str, Any]) -> NoteView:
        votes = _votes(data)
        yes = sum(1 for v in votes if v.get("agrees"))
        dissent = [str(v.get("expert", "?")) for v in votes if not v.get("agrees")]
        label: list[Segment] = [
            (f"round {data.get('round', '?')}: ", "bold"),
            (f"{yes} yes", "green"),
            (" / ", ""),
            (f"{len(votes) - yes} no", "red" if dissent else ""),
        ]
        if dissent:
            label.append((" — dissent: " + ", ".join(dissent), "yellow"))
        rows: list[list[list[Segment]]] = []
        for v in votes:
            vote: list[Segment] = [("yes", "green")] if v.get("agrees") else [("no", "red")]
            if not v.get("parsed", True):
                vote.append((" (unparsed)", "yellow"))
            rows.append([_plain(v.get("expert", "?")), vote, _plain(v.get("advice") or "")])
        return NoteView(
            title=f"vote round {data.get('round', '?')}",
            label=label,
            label_first=True,
            facts=[
                ("outcome", _plain(data.get("outcome", "?"))),
                (
                    "report",
                    _plain("revised with the dissenters' advice" if data.get("revised") else "unchanged"),
                ),
            ],
            table=(["expert", "vote", "advice"], rows),
        )


@register_note("vote_outcome")
class VoteOutcomeNote(NoteSchema):
    """``vote_outcome``: the final agreement, the rounds it took and whether it was accepted."""

    def facets(self, data: dict[str, Any]) -> dict[str, int]:
        return {str(data.get("outcome")): 1}

    def view(self, data: dict[str, Any]) -> NoteView:
        mark, style = _mark(data.get("accepted"))
        return NoteView(
            title="vote outcome",
            label=[("vote ", "bold"), (f"{data.get('outcome', '?')} ", ""), (mark, style)],
            facts=[
                ("outcome", _plain(data.get("outcome", "?"))),
                ("rounds", _plain(data.get("rounds", "?"))),
                ("requires", _plain(data.get("require", "?"))),
                ("accepted", [(f"{mark} {'yes' if data.get('accepted') else 'no'}", style)]),
            ],
        )
