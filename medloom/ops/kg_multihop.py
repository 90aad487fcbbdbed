"""KG multi-hop ops (the ``kg_multihop`` recipe).

- ``kg_question``: an agent turns the item's masked chain facts into one question; the item's
  ``question`` becomes that text (a question that repeats the mask placeholder is rejected).
- ``kg_label_check``: is the item well posed (the KG: only the answer satisfies the chain; an
  open-book solver beats chance) and how hard is it (closed-book accuracy, a tag).
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any, Literal

from pydantic import Field

from medloom.agents.agent import item_variables
from medloom.agents.context import AgentContext
from medloom.agents.parsing import parse_reasoning
from medloom.core.calls import Choice
from medloom.core.notes import NoteSchema, register_note
from medloom.core.records import Item, Trace
from medloom.core.text import normalise
from medloom.kg.paths import KGPath
from medloom.kg.store import load_kg
from medloom.kg.verbalise import cue, relation_cues, relation_key, role_question
from medloom.nodes.protocol import NodeOutput
from medloom.nodes.step import BaseOp, OpBuild, OpParams, register_op
from medloom.verifiers.label import beats_chance, needed_to_beat_chance, options_satisfying
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


class QuestionParams(OpParams):
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


@register_op("kg_question")
class WriteQuestion(BaseOp):
    """Writes the item's question from ``data.facts`` (the chain with its answer masked).

    ``samples`` candidates are drawn; the first that is long enough, ends with "?", does not
    repeat the mask, names no avoided term (the answer, ``avoid_field`` names), contains a word
    of the answer's type (``type_words``), and, with ``require_anchor`` and
    ``require_first_relation``, names the anchor and uses the wording of its relation is kept.
    When none is usable the item is rejected listing every candidate's problem.
    """

    Params = QuestionParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        self.agent = build.agent(variables=())
        self.fidelity = QuestionFidelity(
            type_words=self.params.type_words or None, kg=build.graph.resources.kg, base_dir=build.base_dir
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

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
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
        return NodeOutput(
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
    ) -> NodeOutput:
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
        ctx.trace_created(trace)
        data = {**item.data, "question_source": source}
        return NodeOutput(traces=[trace], item=item.model_copy(update={"question": question, "data": data}))


class LabelParams(OpParams):
    samples: int = Field(default=4, ge=1)
    """Closed-book samples: the solver sees the question and options only (difficulty)."""
    temperature: float = Field(default=0.7, ge=0)
    alpha: float = Field(default=0.1, gt=0, lt=1)
    """A solver's accuracy counts only when a uniform guesser would reach it at most this often
    (one-sided binomial test), so a solver-based gate passes a guess at most ``alpha`` of the time."""
    easy_at: float = Field(default=0.75, gt=0, le=1)
    """Share of correct closed-book samples from which an item counts as easy."""
    min_correct: int = Field(default=0, ge=0)
    """Also reject items fewer closed-book samples answer correctly (0: difficulty is a tag only)."""
    kg_unique: bool = True
    """Reject an ill-posed item: its answer does not satisfy the chain (``data.path``) in the KG,
    or a distractor does."""
    open_book_samples: int = Field(default=0, ge=0)
    """Open-book samples (0: none): the solver sees the path's facts and the options, shuffled
    anew for each sample, at temperature 0, so a guess and a letter bias score as chance."""
    open_book_template: str = "kg_reason"
    require_open_book: bool = True
    """With open-book samples, reject items whose open-book accuracy does not beat chance."""


Difficulty = Literal["easy", "medium", "hard"]


def difficulty(correct: int, samples: int, easy_at: float = 0.75) -> Difficulty:
    if correct == 0:
        return "hard"
    return "easy" if correct / samples >= easy_at else "medium"


def shuffled(options: dict[str, str], seed: str) -> tuple[dict[str, str], dict[str, str]]:
    """The options under a seeded permutation, and the map from new letters back to the old."""
    letters = list(options)
    order = letters[:]
    random.Random(seed).shuffle(order)
    moved = {new: options[old] for new, old in zip(letters, order, strict=True)}
    return moved, dict(zip(letters, order, strict=True))


@register_op("kg_label_check")
class LabelCheck(BaseOp):
    """Is the item well posed, and how hard is it? (see :mod:`medloom.verifiers.label`)

    - well posed: in the KG the answer satisfies the chain and no distractor does (``kg_unique``);
      with ``open_book_samples``, a solver shown the path's facts (options shuffled per sample)
      beats chance at level ``alpha``. Failing either rejects the item, with a code saying which.
    - how hard: a closed-book solver's accuracy tags ``data.difficulty``; whether it beats chance
      is recorded (``data.solver_beats_chance``): at chance, the tag says nothing about the item.
    """

    Params = LabelParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        self.agent = build.agent(build.spec.template or "mcq_cot", variables=())
        p = self.params
        self.open_book = (
            build.agent(
                p.open_book_template,
                name=f"{build.node}:open_book",
                variables=(),
                key="params.open_book_template",
            )
            if p.open_book_samples
            else None
        )

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        p = self.params
        k = len(item.options or {}) or 1
        texts, _ = await self.agent.call(item_variables(item), ctx, n=p.samples, temperature=p.temperature)
        answers = [parse_reasoning(t, item.options)[1] for t in texts]
        correct = sum(a == item.answer for a in answers)
        tag = difficulty(correct, len(texts) or 1, p.easy_at)
        label: dict[str, Any] = {
            "options": k,
            "alpha": p.alpha,
            "closed_book_correct": correct,
            "closed_book_samples": len(texts),
            "closed_book_beats_chance": beats_chance(correct, len(texts), k, p.alpha),
        }
        problems: list[tuple[str, str]] = []
        if p.kg_unique and item.data.get("path") and item.options:
            loaded = await asyncio.to_thread(load_kg, self.build.graph.resources.kg, self.build.base_dir)
            satisfying = options_satisfying(loaded.kg, KGPath.model_validate(item.data["path"]), item.options)
            label["kg_satisfying"] = satisfying
            label["well_posed_kg"] = satisfying == [item.answer]
            if not label["well_posed_kg"]:
                others = [x for x in satisfying if x != item.answer]
                why = (
                    f"options {others} also satisfy the chain in the KG"
                    if others
                    else f"the answer {item.answer} does not satisfy the chain in the KG"
                )
                problems.append((f"ill-posed: {why}", "ill-posed (KG)"))
        if self.open_book is not None:
            hits = await self._open_book(item, ctx)
            needed = needed_to_beat_chance(p.open_book_samples, k, p.alpha)
            label |= {
                "open_book_correct": hits,
                "open_book_samples": p.open_book_samples,
                "open_book_needed": needed,
                "open_book_confirmed": beats_chance(hits, p.open_book_samples, k, p.alpha),
            }
            if p.require_open_book and not label["open_book_confirmed"]:
                problems.append(
                    (
                        f"label unconfirmed: an open-book solver shown the path's facts chose the answer in "
                        f"{hits}/{p.open_book_samples} shuffles (needs {needed} to beat a guesser at "
                        f"level {p.alpha})",
                        "label unconfirmed (open-book solver at chance)",
                    )
                )
        if correct < p.min_correct:
            problems.append(
                (
                    f"label check: {correct}/{len(texts)} closed-book samples chose {item.answer} "
                    f"(answers {answers})",
                    "label check failed",
                )
            )
        data = {
            **item.data,
            "difficulty": tag,
            "solver_correct": correct,
            "solver_samples": len(texts),
            "solver_answers": answers,
            "solver_beats_chance": label["closed_book_beats_chance"],
            "label_check": label,
        }
        updated = item.model_copy(update={"data": data})
        ctx.note("label_check", label)
        if problems:
            return NodeOutput(
                item=updated, reject="; ".join(r for r, _ in problems), reject_code=problems[0][1]
            )
        tagged = [t.model_copy(update={"meta": {**t.meta, "difficulty": tag}}) for t in traces]
        return NodeOutput(traces=tagged, item=updated)

    async def _open_book(self, item: Item, ctx: AgentContext) -> int:
        """How many of ``open_book_samples`` shuffled presentations the solver answers right."""
        assert self.open_book is not None and item.options

        async def one(i: int) -> bool:
            options, back = shuffled(item.options or {}, f"{item.id}:{i}")
            variables = item_variables(item.model_copy(update={"options": options}))
            texts, _ = await self.open_book.call(variables, ctx, temperature=0.0)  # type: ignore[union-attr]
            picked = parse_reasoning(texts[0], options)[1] if texts else None
            return picked is not None and back.get(picked) == item.answer

        return sum(await asyncio.gather(*(one(i) for i in range(self.params.open_book_samples))))


@register_note("label_check")
class LabelNote(NoteSchema):
    """``label_check``: well-posedness (KG, open-book solver) and the closed-book solver against chance."""

    def facets(self, data: dict[str, Any]) -> dict[str, int]:
        out: dict[str, int] = {}
        if "well_posed_kg" in data:
            out["well posed (KG)" if data["well_posed_kg"] else "ill-posed (KG)"] = 1
        if "open_book_confirmed" in data:
            out["open-book confirmed" if data["open_book_confirmed"] else "open-book at chance"] = 1
        out[
            "closed-book above chance" if data.get("closed_book_beats_chance") else "closed-book at chance"
        ] = 1
        return out


# -- MedReason: link entities, find and prune paths, check the CoT alone ------------------------
