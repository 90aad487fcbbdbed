"""MedReason ops (the ``medreason`` recipe): ``kg_link_entities`` maps an MCQ's entities to the
KG, ``kg_find_paths`` searches and prunes paths between them, and ``kg_cot_check`` keeps a
reasoning trace when a solver re-derives gold from it alone.
"""

from __future__ import annotations

import asyncio

from pydantic import Field

from medloom.agents.agent import item_variables
from medloom.agents.context import AgentContext
from medloom.agents.parsing import parse_reasoning
from medloom.core.records import Item, Trace
from medloom.kg.linking import (
    LinkedEntity,
    candidates,
    linked,
    parse_entity_lists,
    parse_numbers,
    text_mentions,
)
from medloom.kg.samplers import shortest_paths
from medloom.kg.store import LoadedKG, load_kg
from medloom.kg.verbalise import verbalise_path
from medloom.nodes.protocol import Drop, NodeOutput
from medloom.nodes.step import BaseOp, OpBuild, OpParams, register_op


class _KGStep(BaseOp):
    """A step that reads the recipe's knowledge graph (loaded on first use, off the event loop)."""

    async def kg(self) -> LoadedKG:
        return await asyncio.to_thread(load_kg, self.build.graph.resources.kg, self.build.base_dir)


class LinkParams(OpParams):
    tiebreak_template: str = "kg_tiebreak"
    min_score: float = Field(default=88.0, ge=0, le=100)
    """Fuzzy matches below this score are not links."""
    tie_margin: float = Field(default=3.0, ge=0)
    """Candidates within this many points of the best go to the LLM tie-break."""
    max_candidates: int = Field(default=4, ge=2)
    use_text_mentions: bool = True
    """Also link KG names written verbatim in the question and answer (no LLM needed)."""


@register_op("kg_link_entities")
class LinkEntities(_KGStep):
    """An LLM lists the entities of the question and of the answer; each is mapped to the KG by
    exact name or synonym, then fuzzy match, with an LLM tie-break between close candidates."""

    Params = LinkParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        self.extractor = build.agent(variables=())
        self.tiebreaker = build.agent(
            self.params.tiebreak_template,
            name=f"{build.node}:tiebreak",
            variables=("mention", "candidates"),
            key="params.tiebreak_template",
        )

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        loaded = await self.kg()
        texts, _ = await self.extractor.call(item_variables(item), ctx)
        q_names, a_names = parse_entity_lists(texts[0] if texts else "")
        question = await self._link_all(loaded, q_names, ctx)
        answer = await self._link_all(loaded, a_names, ctx)
        in_question = [
            linked(loaded.index, m, n, 100.0, "mention")
            for m, n in text_mentions(loaded.index, item.question)
        ]
        in_gold = [
            linked(loaded.index, m, n, 100.0, "mention")
            for m, n in text_mentions(loaded.index, item.gold_text or "")
        ]
        if self.params.use_text_mentions:
            question, answer = question + in_question, answer + in_gold
        # A name written in the question (and not in the gold answer) is a question entity,
        # whichever list the extractor put it in.
        gold_keys = {(e.id, e.type) for e in in_gold}
        question_keys = {(e.id, e.type) for e in in_question} - gold_keys
        moved = [e for e in answer if (e.id, e.type) in question_keys]
        answer = _unique([e for e in answer if (e.id, e.type) not in question_keys])
        answer_ids = {(e.id, e.type) for e in answer}
        question = _unique([e for e in question + moved if (e.id, e.type) not in answer_ids])
        data = {
            **item.data,
            "kg_question_entities": [e.model_dump() for e in question],
            "kg_answer_entities": [e.model_dump() for e in answer],
            "kg_extracted": {"question": q_names, "answer": a_names},
        }
        updated = item.model_copy(update={"data": data})
        if not question or not answer:
            side = "question" if not question else "answer"
            return NodeOutput(
                item=updated, reject=f"no {side} entity maps to the KG", reject_code=f"no {side} entity in KG"
            )
        # Later nodes run on the traces routed to them: this one carries the linking forward.
        summary = (
            f"Question entities: {'; '.join(f'{e.mention} → {e.name} ({e.how})' for e in question)}\n"
            f"Answer entities: {'; '.join(f'{e.mention} → {e.name} ({e.how})' for e in answer)}"
        )
        trace = Trace(id=f"{item.id}/{self.node}", item_id=item.id, node=self.node, text=summary)
        ctx.trace_created(trace)
        return NodeOutput(traces=[*traces, trace], item=updated)

    async def _link_all(self, loaded: LoadedKG, names: list[str], ctx: AgentContext) -> list[LinkedEntity]:
        out = []
        p = self.params
        for name in names:
            found = candidates(
                loaded.index, name, min_score=p.min_score, margin=p.tie_margin, limit=p.max_candidates
            )
            if not found.matches:
                continue
            node, _, score = found.matches[0]
            how = "exact" if score >= 100 else "fuzzy"
            if found.ambiguous:
                options = [
                    {"number": i, "name": loaded.kg.names[n], "type": loaded.kg.type_of(n)}
                    for i, (n, _, _) in enumerate(found.matches, start=1)
                ]
                texts, _ = await self.tiebreaker.call({"mention": name, "candidates": options}, ctx)
                picked = parse_numbers(texts[0] if texts else "", len(options))
                if picked:
                    node, _, score = found.matches[picked[0] - 1]
                    how = "llm tie-break"
            out.append(linked(loaded.index, name, node, score, how))
        return out


def _unique(entities: list[LinkedEntity]) -> list[LinkedEntity]:
    seen: set[tuple[str, str]] = set()
    out = []
    for e in entities:
        if (e.id, e.type) not in seen:
            seen.add((e.id, e.type))
            out.append(e)
    return out


class PathParams(OpParams):
    per_pair: int = Field(default=50, ge=1)
    """Shortest paths kept per (question entity, answer entity) pair (MedReason: ≤50)."""
    max_hops: int = Field(default=3, ge=1)
    shown: int = Field(default=12, ge=1)
    """Paths offered to the pruning LLM (shortest first)."""
    keep: int = Field(default=3, ge=1)
    """Paths the LLM keeps (MedReason: ≤3)."""


@register_op("kg_find_paths")
class FindPaths(_KGStep):
    """Shortest KG paths from question entities to answer entities; an LLM keeps the most relevant."""

    Params = PathParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        self.pruner = build.agent(variables=("paths", "keep"))

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        loaded = await self.kg()
        kg, p = loaded.kg, self.params

        def nodes(key: str) -> list[int]:
            found = (kg.node_by_id(e["id"], e["type"]) for e in item.data.get(key) or [])
            return [n for n in found if n is not None]

        paths = await asyncio.to_thread(
            shortest_paths,
            kg,
            nodes("kg_question_entities"),
            nodes("kg_answer_entities"),
            per_pair=p.per_pair,
            max_hops=p.max_hops,
        )
        if not paths:
            return NodeOutput(
                reject=f"no KG path of ≤{p.max_hops} hops joins the question and answer entities",
                reject_code="no KG path",
            )
        paths.sort(key=len)
        shown = paths[: p.shown]
        sentences = ["; ".join(verbalise_path(path)) for path in shown]
        pruned_by = "llm"
        if len(shown) <= p.keep:
            chosen = list(range(1, len(shown) + 1))
            pruned_by = "all kept"
        else:
            texts, _ = await self.pruner.call(
                {**item_variables(item), "paths": sentences, "keep": p.keep}, ctx
            )
            chosen = parse_numbers(texts[0] if texts else "", len(shown))[: p.keep]
            if not chosen:
                chosen, pruned_by = list(range(1, p.keep + 1)), "shortest (the LLM chose none)"
        kept = [shown[i - 1] for i in chosen]
        facts = list(dict.fromkeys(s for path in kept for s in verbalise_path(path)))
        data = {
            **item.data,
            "kg_paths": [path.model_dump() for path in kept],
            "kg_path_text": [sentences[i - 1] for i in chosen],
            "kg_facts": facts,
            "kg_paths_found": len(paths),
            "kg_pruned_by": pruned_by,
        }
        return NodeOutput(traces=traces, item=item.model_copy(update={"data": data}))


class SolveParams(OpParams):
    temperature: float = Field(default=0.0, ge=0)


@register_op("kg_cot_check")
class SolveFromReasoning(BaseOp):
    """A solver sees the options and a trace's steps (not its answer line) and must re-derive
    the gold answer; traces it cannot follow to gold are dropped."""

    Params = SolveParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        self.solver = build.agent(build.spec.template or "kg_cot_solve", variables=("reasoning",))

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        async def one(trace: Trace) -> tuple[Trace, str | None]:
            variables = {**item_variables(item), "reasoning": trace.steps_text() or trace.text}
            texts, _ = await self.solver.call(variables, ctx, temperature=self.params.temperature)
            return trace, parse_reasoning(texts[0] if texts else "", item.options)[1]

        keep, drops = [], []
        for trace, answer in await asyncio.gather(*(one(t) for t in traces)):
            if answer is not None and answer == item.answer:
                keep.append(trace.model_copy(update={"meta": {**trace.meta, "cot_solver_answer": answer}}))
            else:
                why = (
                    f"a solver reading only the reasoning chose {answer or 'nothing'}, gold is {item.answer}"
                )
                drops.append(Drop(trace, why, "reasoning does not lead to gold"))
        return NodeOutput(traces=keep, drops=drops)
