"""Labelled cases for measuring verifiers: reasoning traces and questions built from real KG paths,
correct ones and ones with exactly one injected error of a known kind.

Every injected case keeps the id of the correct case it was made from (``base``), so a
verifier's precision on a kind is measured against the same items' correct cases.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

from pydantic import BaseModel

from medloom.agents.parsing import parse_reasoning
from medloom.core.records import Item, Trace
from medloom.kg.model import KnowledgeGraph
from medloom.kg.paths import Hop, KGPath
from medloom.kg.samplers import iter_chains
from medloom.kg.store import LoadedKG
from medloom.kg.verbalise import kg_facts, phrases, relation_key, role_question, verbalise_hop, verbalise_path
from medloom.kg.wording import default_type_words, denial, relation_forms
from medloom.ops.kg_chains import ChainSourceParams, chain_item

TRACE_KINDS = [
    "swapped_entity",
    "wrong_relation",
    "reversed_direction",
    "non_edge_named",
    "non_edge_coref",
    "distractor_as_fact",
    "negated_edge",
    "skipped_hop",
    "wrong_letter",
    "restated_question",
]
"""Injected errors in reasoning traces (one per case)."""

QUESTION_KINDS = [
    "wrong_relation",
    "dropped_hop",
    "swapped_order",
    "wrong_anchor",
    "wrong_answer_type",
    "off_path_entity",
    "absent_type",
    "leaked_answer",
    "leaked_intermediate",
]
"""Injected mismatches between a question and its path."""

CORRECT = "correct"
PARAPHRASES = {
    "treats": "{head} is used to treat {tail}",
    "palliates": "{head} relieves {tail}",
    "binds": "{head} targets the protein encoded by {tail}",
    "associates": "{head} is linked to the gene {tail}",
    "localizes": "{head} affects the {tail}",
    "resembles": "{head} is similar to {tail}",
}
"""Correct wordings other than phrases.yaml's (as a model might write them), for false rejections."""
COREF = {"Compound": "this drug", "Disease": "the disease", "Gene": "this gene", "Anatomy": "that organ"}


class Case(BaseModel):
    id: str
    base: str
    """The correct case this one was made from (itself for a correct case)."""
    kind: str
    """``correct`` or the injected error's kind."""
    variant: str
    """How the correct trace or question was written (kg_facts, walk, coref, negation, role, joined)."""
    kg: str
    item: Item
    trace: Trace

    @property
    def is_error(self) -> bool:
        return self.kind != CORRECT


def _trace(item: Item, steps: list[str], letter: str | None = None) -> Trace:
    letter = letter or str(item.answer)
    body = "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, start=1))
    text = f"{body}\nAnswer: {letter}) {item.gold_text}"
    parsed, answer, error = parse_reasoning(text, item.options)
    return Trace(
        id="t", item_id=item.id, node="bench", text=text, steps=parsed, answer=answer, parse_error=error
    )


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _hop_sentence(hop: Hop, *, walk: bool) -> str:
    stated = hop if walk else hop.model_copy(update={"source": hop.head, "target": hop.tail, "forward": True})
    return _sentence(verbalise_hop(stated))


def _tidy(text: str) -> str:
    """ "the gene it" → "it", "the protein encoded by this gene" → "this gene" (a coreference
    dropped into a phrase written for a name)."""
    return re.sub(r"\b(?:the gene |the protein encoded by |the )(this|that|the|it)\b", r"\1", text)


def _form(relation: str, head: str, tail: str, *, active: bool = True) -> str:
    forms = phrases().get(relation_key(relation))
    if forms is None:
        return f"{head} {relation} {tail}"
    return (forms["active"] if active else forms["passive"]).format(head=head, tail=tail)


class Injector:
    """Builds correct and injected cases for the items of one KG."""

    def __init__(self, loaded: LoadedKG, kg_name: str, seed: int = 0):
        self.loaded = loaded
        self.kg: KnowledgeGraph = loaded.kg
        self.kg_name = kg_name
        self.rng = random.Random(seed)

    # -- items ----------------------------------------------------------------------------------

    def items(self, n: int, seed: int = 0, relations: Sequence[str] | None = None) -> list[Item]:
        """``n`` kg_multihop items (2–4 hops, 5 options) with their path-built question."""
        allowed = list(relations) if relations else None
        params = ChainSourceParams(n=n, seed=seed, options=5, min_hops=2, max_hops=4, relations=allowed)
        out: list[Item] = []
        for chain in iter_chains(self.kg, params.constraints(), seed):
            item = chain_item(self.loaded, chain, len(out), params)
            if item is not None:
                path = KGPath.model_validate(item.data["path"])
                out.append(
                    item.model_copy(
                        update={"question": role_question(path), "id": f"{self.kg_name}-{item.id}"}
                    )
                )
            if len(out) >= n:
                break
        return out

    def node(self, ref_id: str, ref_type: str) -> int:
        found = self.kg.node_by_id(ref_id, ref_type)
        assert found is not None, f"{ref_type} {ref_id} is not in the KG"
        return found

    def unlinked(self, type_name: str, away_from: list[int], avoid: set[int]) -> int | None:
        """A random entity of ``type_name`` with no KG edge to any of ``away_from``."""
        pool = [n for n in self.kg.nodes_of_type(type_name) if n not in avoid and self.kg.degree(n) > 0]
        self.rng.shuffle(pool)
        return next((n for n in pool if not any(self.kg.has_edge(n, a) for a in away_from)), None)

    # -- traces ---------------------------------------------------------------------------------

    def correct_traces(self, item: Item) -> dict[str, list[str]]:
        """Correct step lists: the facts as the KG states them, in walking order, with
        coreferences for the entity carried over from the previous step, and with a true denial."""
        path = KGPath.model_validate(item.data["path"])
        conclusion = f"So the answer is {path.end.name}."
        facts = [_sentence(f) for f in kg_facts(path)]
        walk = [_sentence(f) for f in verbalise_path(path)]
        coref = [walk[0]]
        for i, hop in enumerate(path.hops[1:], start=1):
            phrase = "it" if i % 2 else COREF.get(hop.source.type, "it")
            coref.append(_sentence(self._with_coref(hop, phrase)))
        reworded = [
            _sentence(
                PARAPHRASES.get(relation_key(h.relation), "{head} " + h.relation + " {tail}").format(
                    head=h.head.name, tail=h.tail.name
                )
            )
            for h in path.hops
        ]
        variants = {
            "kg_facts": [*facts, conclusion],
            "walk": [*walk, conclusion],
            "coref": [*coref, conclusion],
            "paraphrase": [*reworded, conclusion],
        }
        last = path.hops[-1]
        prev = self.node(last.source.id, last.source.type)
        distractor = self._distractor(item, prev, last.relation)
        if distractor is not None:
            head, tail = (last.source.name, distractor) if last.forward else (distractor, last.source.name)
            variants["negation"] = [*facts, _sentence(denial(last.relation, head, tail)), conclusion]
        return variants

    def _with_coref(self, hop: Hop, phrase: str) -> str:
        """The hop's sentence in walking order with its source written as ``phrase``."""
        head, tail = (phrase, hop.tail.name) if hop.forward else (hop.head.name, phrase)
        text = _form(hop.relation, head, tail, active=hop.forward)
        return _tidy(text)

    def _distractor(self, item: Item, prev: int, relation: str) -> str | None:
        """An option other than the answer joined to ``prev`` by no ``relation`` edge either way."""
        for letter, name in (item.options or {}).items():
            if letter == item.answer:
                continue
            nodes = self.loaded.index.lookup(name, str(item.data["answer_type"]))
            if nodes and not any(self.kg.has_edge(prev, n, relation) for n in nodes):
                return name
        return None

    def trace_cases(self, item: Item) -> list[Case]:
        variants = self.correct_traces(item)
        out: list[Case] = []
        for variant, steps in variants.items():
            out.append(self._case(item, variant, CORRECT, variant, _trace(item, steps)))
        path = KGPath.model_validate(item.data["path"])
        injectors: dict[str, Callable[[Item, KGPath, list[str]], Trace | None]] = {
            "swapped_entity": self._swapped_entity,
            "wrong_relation": self._wrong_relation,
            "reversed_direction": self._reversed_direction,
            "non_edge_named": self._non_edge_named,
            "non_edge_coref": self._non_edge_coref,
            "distractor_as_fact": self._distractor_as_fact,
            "negated_edge": self._negated_edge,
            "skipped_hop": self._skipped_hop,
            "wrong_letter": self._wrong_letter,
            "restated_question": self._restated_question,
        }
        for k, (kind, inject) in enumerate(injectors.items()):
            variant = ("kg_facts", "walk")[k % 2]
            trace = inject(item, path, list(variants[variant]))
            if trace is not None:
                out.append(self._case(item, variant, kind, f"{variant}:{kind}", trace))
        return out

    def _case(self, item: Item, variant: str, kind: str, suffix: str, trace: Trace) -> Case:
        base = f"{item.id}/{variant}"
        return Case(
            id=f"{item.id}/{suffix}",
            base=base,
            kind=kind,
            variant=variant,
            kg=self.kg_name,
            item=item,
            trace=trace,
        )

    def _pick_hop(self, path: KGPath, ok: Callable[[Hop], bool] = lambda h: True) -> tuple[int, Hop] | None:
        fitting = [(i, h) for i, h in enumerate(path.hops) if ok(h)]
        return self.rng.choice(fitting) if fitting else None

    def _swapped_entity(self, item: Item, path: KGPath, steps: list[str]) -> Trace | None:
        i, hop = self._pick_hop(path) or (0, path.hops[0])
        on_path = {self.node(n.id, n.type) for n in path.nodes}
        keep, swap = (
            (hop.target, hop.source)
            if i < len(path.hops) - 1 or self.rng.random() < 0.5
            else (hop.source, hop.target)
        )
        if swap.id == path.end.id:
            keep, swap = swap, keep
        other = self.unlinked(swap.type, [self.node(keep.id, keep.type)], on_path)
        if other is None or swap.name not in steps[i]:
            return None
        steps[i] = steps[i].replace(swap.name, self.kg.names[other], 1)
        return _trace(item, steps)

    def _wrong_relation(self, item: Item, path: KGPath, steps: list[str]) -> Trace | None:
        known = {relation_key(r) for r in self.kg.relations}
        for i, hop in sorted(enumerate(path.hops), key=lambda _: self.rng.random()):
            a, b = self.node(hop.head.id, hop.head.type), self.node(hop.tail.id, hop.tail.type)
            held = {
                relation_key(r) for r in [*self.kg.relations_between(a, b), *self.kg.relations_between(b, a)]
            }
            others = sorted(known - held - {relation_key(hop.relation)})
            if others:
                wrong = self.rng.choice(others)
                steps[i] = _sentence(_form(wrong, hop.head.name, hop.tail.name))
                return _trace(item, steps)
        return None

    def _reversed_direction(self, item: Item, path: KGPath, steps: list[str]) -> Trace | None:
        def asymmetric(h: Hop) -> bool:
            forms = relation_forms(h.relation)
            a, b = self.node(h.head.id, h.head.type), self.node(h.tail.id, h.tail.type)
            return (
                forms is not None
                and not forms.symmetric
                and not self.kg.has_edge(b, a, h.relation, either_direction=False)
            )

        picked = self._pick_hop(path, asymmetric)
        if picked is None:
            return None
        i, hop = picked
        steps[i] = _sentence(_form(hop.relation, hop.tail.name, hop.head.name))
        return _trace(item, steps)

    def _non_edge_named(self, item: Item, path: KGPath, steps: list[str]) -> Trace | None:
        i, hop = self._pick_hop(path) or (0, path.hops[0])
        head = self.node(hop.head.id, hop.head.type)
        on_path = {self.node(n.id, n.type) for n in path.nodes}
        other = self.unlinked(hop.tail.type, [head], on_path)
        if other is None:
            return None
        steps.insert(i + 1, _sentence(_form(hop.relation, hop.head.name, self.kg.names[other])))
        return _trace(item, steps)

    def _non_edge_coref(self, item: Item, path: KGPath, steps: list[str]) -> Trace | None:
        """After hop i's step, a step about the entity it reached, written "it", "the disease" or
        "this drug", asserting an edge the KG lacks (the SLC9A1 row's "The disease is associated
        with a spinal cancer")."""
        i, hop = self._pick_hop(path) or (0, path.hops[0])
        reached = hop.target
        named = [self.node(hop.source.id, hop.source.type), self.node(reached.id, reached.type)]
        on_path = {self.node(n.id, n.type) for n in path.nodes}
        other_type = hop.source.type  # the relation joins the reached type to the source's type
        other = self.unlinked(other_type, named, on_path)
        if other is None:
            return None
        phrase = self.rng.choice(["it", COREF.get(reached.type, "it")])
        head, tail = (phrase, self.kg.names[other]) if not hop.forward else (self.kg.names[other], phrase)
        text = _form(hop.relation, head, tail, active=not hop.forward)
        text = _tidy(text)
        steps.insert(i + 1, _sentence(text))
        return _trace(item, steps)

    def _distractor_as_fact(self, item: Item, path: KGPath, steps: list[str]) -> Trace | None:
        last = path.hops[-1]
        prev = self.node(last.source.id, last.source.type)
        distractor = self._distractor(item, prev, last.relation)
        if distractor is None:
            return None
        wrong = last.model_copy(update={"target": last.target.model_copy(update={"name": distractor})})
        steps.insert(len(path.hops), _hop_sentence(wrong, walk=True))
        return _trace(item, steps)

    def _negated_edge(self, item: Item, path: KGPath, steps: list[str]) -> Trace | None:
        i, hop = self._pick_hop(path) or (0, path.hops[0])
        steps[i] = _sentence(denial(hop.relation, hop.head.name, hop.tail.name))
        return _trace(item, steps)

    def _skipped_hop(self, item: Item, path: KGPath, steps: list[str]) -> Trace | None:
        i = self.rng.randrange(len(path.hops))
        del steps[i]
        return _trace(item, steps)

    def _wrong_letter(self, item: Item, path: KGPath, steps: list[str]) -> Trace | None:
        wrong = self.rng.choice([k for k in item.options or {} if k != item.answer])
        return _trace(item, steps, letter=wrong)

    def _restated_question(self, item: Item, path: KGPath, steps: list[str]) -> Trace | None:
        steps.insert(0, item.question)
        return _trace(item, steps)

    # -- questions ------------------------------------------------------------------------------

    def question_cases(self, item: Item) -> list[Case]:
        path = KGPath.model_validate(item.data["path"])
        role = role_question(path)
        joined = re.sub(r"; that (\w+) ", " that ", role)
        out = [self._q(item, "role", CORRECT, role)]
        if joined != role:
            out.append(self._q(item, "joined", CORRECT, joined))
        makers: dict[str, Callable[[Item, KGPath, str], str | None]] = {
            "wrong_relation": self._q_wrong_relation,
            "dropped_hop": self._q_dropped_hop,
            "swapped_order": self._q_swapped_order,
            "wrong_anchor": self._q_wrong_anchor,
            "wrong_answer_type": self._q_wrong_answer_type,
            "off_path_entity": self._q_off_path_entity,
            "absent_type": self._q_absent_type,
            "leaked_answer": lambda it, p, q: q[:-1] + f" (such as {p.end.name})?",
            "leaked_intermediate": lambda it, p, q: q[:-1] + f", by way of {p.nodes[1].name}?",
        }
        for kind, make in makers.items():
            question = make(item, path, role)
            if question is not None and question != role:
                out.append(self._q(item, "role", kind, question))
        return out

    def _q(self, item: Item, variant: str, kind: str, question: str) -> Case:
        asked = item.model_copy(update={"question": question})
        trace = Trace(id="q", item_id=item.id, node="bench", text=question, meta={"question": question})
        suffix = variant if kind == CORRECT else f"q:{kind}"
        return Case(
            id=f"{item.id}/{suffix}",
            base=f"{item.id}/role",
            kind=kind,
            variant=variant,
            kg=self.kg_name,
            item=asked,
            trace=trace,
        )

    def _q_wrong_relation(self, item: Item, path: KGPath, q: str) -> str | None:
        used = {relation_key(r) for r in path.relations}
        choices = sorted({relation_key(r) for r in self.kg.relations} - used)
        if not choices:
            return None
        i = self.rng.randrange(len(path.hops))
        hops = list(path.hops)
        hops[i] = hops[i].model_copy(update={"relation": self.rng.choice(choices)})
        return role_question(path.model_copy(update={"hops": hops}))

    def _q_dropped_hop(self, item: Item, path: KGPath, q: str) -> str | None:
        clauses = q[:-1].split("; ")
        if len(clauses) < 2 or len({relation_key(r) for r in path.relations}) < 2:
            return None
        runs = [relation_key(h.relation) for h in path.hops]
        droppable = [i for i in range(len(clauses) - 1) if runs.count(runs[i]) == 1]
        if not droppable:
            return None
        del clauses[self.rng.choice(droppable)]
        text = "; ".join(clauses)
        return text[:1].upper() + text[1:] + "?"

    def _q_swapped_order(self, item: Item, path: KGPath, q: str) -> str | None:
        clauses = q[:-1].split("; ")
        runs = [relation_key(h.relation) for h in path.hops]
        pairs = [(i, j) for i in range(len(runs)) for j in range(i + 1, len(runs)) if runs[i] != runs[j]]
        if len(clauses) != len(runs) or not pairs:
            return None
        i, j = self.rng.choice(pairs)
        clauses[i], clauses[j] = clauses[j], clauses[i]
        text = "; ".join(clauses)
        return text[:1].upper() + text[1:] + "?"

    def _q_wrong_anchor(self, item: Item, path: KGPath, q: str) -> str | None:
        on_path = {self.node(n.id, n.type) for n in path.nodes}
        other = self.unlinked(path.start.type, [], on_path)
        return None if other is None else q.replace(path.start.name, self.kg.names[other], 1)

    def _q_wrong_answer_type(self, item: Item, path: KGPath, q: str) -> str | None:
        asked = f"which {path.end.type.lower()}"
        types = [t for t in default_type_words() if t != path.end.type and t in self.kg.types]
        if asked not in q or not types:
            return None
        return q.replace(asked, f"which {default_type_words()[self.rng.choice(types)][0]}")

    def _q_off_path_entity(self, item: Item, path: KGPath, q: str) -> str | None:
        wrong = [name for letter, name in (item.options or {}).items() if letter != item.answer]
        return q[:-1] + f", other than {self.rng.choice(wrong)}?" if wrong else None

    def _q_absent_type(self, item: Item, path: KGPath, q: str) -> str | None:
        """The SLC9A1 row's question: a chain through an organ it does not have."""
        types = {n.type for n in path.nodes}
        if "Anatomy" in types or "Anatomy" not in self.kg.types or len(path.hops) < 2:
            return None
        first = path.hops[0]
        head, tail = (path.start.name, f"a {first.target.type.lower()} of one organ")
        if not first.forward:
            head, tail = tail, head
        opening = _form(first.relation, head, tail, active=first.forward)
        return _sentence(opening)[:-1] + f"; which {path.end.type.lower()} localizes to that organ?"


def build_cases(loaded: LoadedKG, kg_name: str, items: int, seed: int = 0) -> tuple[list[Case], list[Case]]:
    """(trace cases, question cases) for ``items`` items of ``loaded``."""
    injector = Injector(loaded, kg_name, seed)
    relations = [
        r
        for r in ("treats", "palliates", "binds", "associates", "localizes", "resembles")
        if r in loaded.kg.relations
    ]
    made = injector.items(items, seed, relations)
    traces = [c for item in made for c in injector.trace_cases(item)]
    questions = [c for item in made for c in injector.question_cases(item)]
    return traces, questions
