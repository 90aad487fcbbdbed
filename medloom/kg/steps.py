"""KG step ops for recipes.

- ``kg_question``: an agent turns the item's masked chain facts into one question; the item's
  ``question`` becomes that text (a question that repeats the mask placeholder is rejected).
- ``kg_label_check``: a solver answers the question alone ``samples`` times; the share it gets
  right tags the item's difficulty, and items below ``min_correct`` are rejected for review.
- ``kg_link_entities``, ``kg_find_paths``, ``kg_cot_check``: MedReason's entity mapping, path
  search and pruning, and the check that a solver re-derives gold from the reasoning alone.
"""

from __future__ import annotations

import asyncio
import re
from typing import Literal

from pydantic import Field

from medloom.agents.agent import item_variables
from medloom.agents.context import AgentContext
from medloom.agents.parsing import parse_reasoning
from medloom.graphs.steps import BaseStep, Drop, StepBuild, StepOutput, StepParams, register_step
from medloom.kg.linking import (
    LinkedEntity,
    candidates,
    linked,
    parse_entity_lists,
    parse_numbers,
    text_mentions,
)
from medloom.kg.paths import KGPath
from medloom.kg.samplers import shortest_paths
from medloom.kg.store import LoadedKG, load_kg
from medloom.kg.verbalise import cue, relation_cues, relation_key, role_question, verbalise_path
from medloom.llm.types import Choice
from medloom.records import Item, Trace
from medloom.runs.events import TraceCreated
from medloom.verifiers.match import normalise
from medloom.verifiers.question_fidelity import QuestionFidelity

_QUESTION_PREFIX = re.compile(r"^\s*(?:\*\*)?question(?:\*\*)?\s*[:\-]\s*", re.I)


def clean_question(text: str) -> str:
    """The first paragraph of ``text`` without a leading "Question:" label, up to its last "?"."""
    body = _QUESTION_PREFIX.sub("", text.strip())
    body = re.split(r"\n\s*\n|###|\n(?:Facts|Answer|Options?)\s*:", body, maxsplit=1)[0]
    body = " ".join(body.split())
    if "?" in body:
        body = body[: body.rindex("?") + 1]
    return body.strip()


class QuestionParams(StepParams):
    min_chars: int = Field(default=20, ge=1)
    samples: int = Field(default=1, ge=1)
    """Candidate questions sampled in one request; the first usable one is kept."""
    require_anchor: bool = False
    """A usable question names the chain's first entity (``data.anchor``)."""
    avoid_field: str | None = None
    """``item.data`` field listing names a usable question must not contain (besides the answer)."""
    require_first_relation: bool = False
    """A usable question uses the wording of the chain's first relation (``data.path``), the
    anchor's own fact ("treats"/"treated", "binds"/"bound", from phrases.yaml), so a question
    that describes another chain (e.g. a copied example) is not used."""
    fallback: Literal["none", "role_question"] = "none"
    """When no candidate is usable: reject the item ("none"), or ask the question built from
    the path by ``medloom.kg.verbalise.role_question`` (start named, later entities described by
    type and order), which must pass the same rules; ``data.question_source`` records which."""
    type_words: dict[str, list[str]] = Field(default_factory=dict)
    """Per answer type (``data.answer_type``), words one of which a usable question asks for
    ("which/what [other] <word>", e.g. ``Gene: [gene, protein]``); unlisted types pass."""
    fidelity: bool = False
    """A usable question also passes the ``question_fidelity`` check against ``data.path``: it
    describes the path's relations in order, names nothing off the path, and no absent type."""


def _names(text: str, term: str) -> bool:
    return f" {normalise(term)} " in f" {normalise(text)} " if len(normalise(term)) >= 3 else False


def _asks_for(question: str, words: list[str]) -> bool:
    """Whether ``question`` asks "which/what [other] <word>" for one of ``words``."""
    alternatives = "|".join(re.escape(normalise(w)) for w in words)
    pattern = rf"\b(?:which|what)(?: other| another)? (?:{alternatives})\b"
    return re.search(pattern, normalise(question)) is not None


def _first_relation(item: Item) -> str | None:
    hops = (item.data.get("path") or {}).get("hops") or []
    return str(hops[0]["relation"]) if hops else None


@register_step("kg_question")
class WriteQuestion(BaseStep):
    """Writes the item's question from ``data.facts`` (the chain with its answer masked).

    ``samples`` candidates are drawn; the first that is long enough, ends with "?", does not
    repeat the mask, names no avoided term (the answer, ``avoid_field`` names), contains a word
    of the answer's type (``type_words``), and, with ``require_anchor`` and
    ``require_first_relation``, names the anchor and uses the wording of its relation is kept.
    When none is usable the item is rejected listing every candidate's problem.
    """

    Params = QuestionParams

    def __init__(self, build: StepBuild):
        super().__init__(build)
        self.agent = build.agent()
        self.fidelity = QuestionFidelity(
            type_words=self.params.type_words or None, kg=build.graph.kg, base_dir=build.base_dir
        )

    def problem(self, item: Item, question: str) -> str | None:
        """Why ``question`` is unusable for ``item`` (None when it is usable)."""
        p = self.params
        mask = str(item.data.get("mask", "[ANSWER]"))
        if len(question) < p.min_chars:
            return "too short"
        if not question.endswith("?"):
            return "not a question (no '?')"
        if mask.lower() in question.lower():
            return f"repeats the mask {mask}"
        avoided = [item.gold_text or ""]
        if p.avoid_field:
            extra = item.data.get(p.avoid_field) or []
            avoided += [str(t) for t in (extra if isinstance(extra, list) else [extra])]
        anchor = str(item.data.get("anchor") or "")
        # the anchor may contain an avoided name ("cornea" in "substantia propria of cornea")
        without_anchor = normalise(question).replace(normalise(anchor), " | ") if anchor else question
        named = [t for t in avoided if t and _names(without_anchor, t)]
        if named:
            return f"names {', '.join(repr(t) for t in named)}"
        if p.require_anchor and anchor and not _names(question, anchor):
            return f"does not name the anchor {anchor!r}"
        relation = _first_relation(item) if p.require_first_relation else None
        cues = relation_cues().get(relation_key(relation)) if relation else None
        if relation and cues and not cues & {cue(w) for w in re.findall(r"[A-Za-z]+", question)}:
            return f"does not use the wording of the anchor's relation ({relation})"
        words = p.type_words.get(str(item.data.get("answer_type") or ""))
        if words and not _asks_for(question, words):
            return f"does not ask 'which/what {' / '.join(words)}'"
        if p.fidelity and item.data.get("path"):
            problems = self.fidelity.problems(question, KGPath.model_validate(item.data["path"]))
            return "; ".join(problems) or None
        return None

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> StepOutput:
        texts, response = await self.agent.call(item_variables(item), ctx, n=self.params.samples)
        tried: list[dict[str, str | None]] = []
        for index, raw in enumerate(texts):
            question = clean_question(raw)
            why = self.problem(item, question)
            tried.append({"question": question or raw[:80], "problem": why})
            if why is None:
                choice = response.choices[index] if index < len(response.choices) else None
                return self._use(item, ctx, question, "llm", tried, raw=raw, index=index, choice=choice)
        problems = "; ".join(f"{t['question']!r}: {t['problem']}" for t in tried) or "no output"
        if self.params.fallback == "role_question" and item.data.get("path"):
            question = role_question(KGPath.model_validate(item.data["path"]))
            why = self.problem(item, question)
            if why is None:
                return self._use(item, ctx, question, "role_question", tried)
            problems += f"; the role question {question!r}: {why}"
        masked = tried and all(str(t["problem"]).startswith("repeats the mask") for t in tried)
        return StepOutput(
            reject=f"no usable question among {len(tried)} candidates ({problems})",
            reject_code="mask in question" if masked else "no usable question",
        )

    def _use(
        self,
        item: Item,
        ctx: AgentContext,
        question: str,
        source: str,
        tried: list[dict[str, str | None]],
        *,
        raw: str = "",
        index: int = 0,
        choice: Choice | None = None,
    ) -> StepOutput:
        trace = Trace(
            id=f"{item.id}/{self.node}",
            item_id=item.id,
            node=self.node,
            model=self.agent.model.served if source == "llm" else None,
            text=question,
            finish_reason=choice.finish_reason if choice else None,
            sample_index=index,
            meta={"question": question, "raw": raw, "question_source": source, "candidates": tried},
        )
        ctx.send(TraceCreated(item_id=item.id, attempt=ctx.attempt, node=ctx.node, trace=trace))
        data = {**item.data, "question_source": source}
        return StepOutput(traces=[trace], item=item.model_copy(update={"question": question, "data": data}))


class LabelParams(StepParams):
    samples: int = Field(default=4, ge=1)
    temperature: float = Field(default=0.7, ge=0)
    min_correct: int = Field(default=1, ge=0)
    """Reject items fewer samples answer correctly (0 keeps unanswered items, tagged hard)."""
    easy_at: float = Field(default=0.75, gt=0, le=1)
    """Share of correct samples from which an item counts as easy."""


Difficulty = Literal["easy", "medium", "hard"]


def difficulty(correct: int, samples: int, easy_at: float = 0.75) -> Difficulty:
    if correct == 0:
        return "hard"
    return "easy" if correct / samples >= easy_at else "medium"


@register_step("kg_label_check")
class LabelCheck(BaseStep):
    """A solver answers from the question and options alone; tags difficulty by its accuracy."""

    Params = LabelParams

    def __init__(self, build: StepBuild):
        super().__init__(build)
        self.agent = build.agent(build.spec.template or "mcq_cot")

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> StepOutput:
        p = self.params
        texts, _ = await self.agent.call(item_variables(item), ctx, n=p.samples, temperature=p.temperature)
        answers = [parse_reasoning(t, item.options)[1] for t in texts]
        correct = sum(a == item.answer for a in answers)
        tag = difficulty(correct, len(texts) or 1, p.easy_at)
        data = {
            **item.data,
            "difficulty": tag,
            "solver_correct": correct,
            "solver_samples": len(texts),
            "solver_answers": answers,
        }
        updated = item.model_copy(update={"data": data})
        if correct < p.min_correct:
            return StepOutput(
                item=updated,
                reject=(
                    f"label check: {correct}/{len(texts)} solver samples chose the KG answer "
                    f"{item.answer} (answers {answers}); needs review"
                ),
                reject_code="label check failed",
            )
        tagged = [t.model_copy(update={"meta": {**t.meta, "difficulty": tag}}) for t in traces]
        return StepOutput(traces=tagged, item=updated)


# -- MedReason: link entities, find and prune paths, check the CoT alone ------------------------


class _KGStep(BaseStep):
    """A step that reads the recipe's knowledge graph (loaded on first use, off the event loop)."""

    async def kg(self) -> LoadedKG:
        return await asyncio.to_thread(load_kg, self.build.graph.kg, self.build.base_dir)


class LinkParams(StepParams):
    tiebreak_template: str = "kg_tiebreak"
    min_score: float = Field(default=88.0, ge=0, le=100)
    """Fuzzy matches below this score are not links."""
    tie_margin: float = Field(default=3.0, ge=0)
    """Candidates within this many points of the best go to the LLM tie-break."""
    max_candidates: int = Field(default=4, ge=2)
    use_text_mentions: bool = True
    """Also link KG names written verbatim in the question and answer (no LLM needed)."""


@register_step("kg_link_entities")
class LinkEntities(_KGStep):
    """An LLM lists the entities of the question and of the answer; each is mapped to the KG by
    exact name or synonym, then fuzzy match, with an LLM tie-break between close candidates."""

    Params = LinkParams

    def __init__(self, build: StepBuild):
        super().__init__(build)
        self.extractor = build.agent()
        self.tiebreaker = build.agent(self.params.tiebreak_template, name=f"{build.node}:tiebreak")

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> StepOutput:
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
            return StepOutput(
                item=updated, reject=f"no {side} entity maps to the KG", reject_code=f"no {side} entity in KG"
            )
        # Later nodes run on the traces routed to them: this one carries the linking forward.
        summary = (
            f"Question entities: {'; '.join(f'{e.mention} → {e.name} ({e.how})' for e in question)}\n"
            f"Answer entities: {'; '.join(f'{e.mention} → {e.name} ({e.how})' for e in answer)}"
        )
        trace = Trace(id=f"{item.id}/{self.node}", item_id=item.id, node=self.node, text=summary)
        ctx.send(TraceCreated(item_id=item.id, attempt=ctx.attempt, node=ctx.node, trace=trace))
        return StepOutput(traces=[*traces, trace], item=updated)

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


class PathParams(StepParams):
    per_pair: int = Field(default=50, ge=1)
    """Shortest paths kept per (question entity, answer entity) pair (MedReason: ≤50)."""
    max_hops: int = Field(default=3, ge=1)
    shown: int = Field(default=12, ge=1)
    """Paths offered to the pruning LLM (shortest first)."""
    keep: int = Field(default=3, ge=1)
    """Paths the LLM keeps (MedReason: ≤3)."""


@register_step("kg_find_paths")
class FindPaths(_KGStep):
    """Shortest KG paths from question entities to answer entities; an LLM keeps the most relevant."""

    Params = PathParams

    def __init__(self, build: StepBuild):
        super().__init__(build)
        self.pruner = build.agent()

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> StepOutput:
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
            return StepOutput(
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
        return StepOutput(traces=traces, item=item.model_copy(update={"data": data}))


class SolveParams(StepParams):
    temperature: float = Field(default=0.0, ge=0)


@register_step("kg_cot_check")
class SolveFromReasoning(BaseStep):
    """A solver sees the options and a trace's steps (not its answer line) and must re-derive
    the gold answer; traces it cannot follow to gold are dropped."""

    Params = SolveParams

    def __init__(self, build: StepBuild):
        super().__init__(build)
        self.solver = build.agent(build.spec.template or "kg_cot_solve")

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> StepOutput:
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
        return StepOutput(traces=keep, drops=drops)
