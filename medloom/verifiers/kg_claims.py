"""What a reasoning step claims about the KG: the entities each clause refers to (named, or by a
coreference such as "the disease", "this drug", "it", resolved to an earlier entity or the item's
path), and whether the clause affirms or denies its relation."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from medloom.kg.lookup import EntityIndex
from medloom.kg.model import KnowledgeGraph
from medloom.kg.paths import KGPath
from medloom.kg.wording import clauses, default_type_words, is_negated, words_of

_DETERMINERS = {"the", "this", "that", "these", "those", "said", "such"}
_PRONOUNS = {"it", "its"}
_APPOSITION_GAP = {"encoded", "by", "called", "named"}


@dataclass(frozen=True)
class Ref:
    """One entity a clause refers to: by name, or by a coreference resolved to ``nodes``."""

    start: int
    """Word position in the clause."""
    end: int
    nodes: tuple[int, ...]
    text: str
    named: bool


@dataclass
class Clause:
    text: str
    words: list[str]
    refs: list[Ref]
    negated: bool
    unresolved: list[str] = field(default_factory=list)
    """Coreference phrases no earlier entity or path node could stand for."""

    def free_words(self) -> list[str]:
        """The words outside entity names ("allergic" in "allergic rhinitis" cues no relation)."""
        inside = {i for r in self.refs if r.named for i in range(r.start, r.end)}
        return [w if i not in inside else "" for i, w in enumerate(self.words)]

    def between(self, a: Ref, b: Ref) -> str:
        first, second = (a, b) if a.start <= b.start else (b, a)
        return " ".join(self.words[first.end : second.start])


@dataclass
class StepClaims:
    index: int
    text: str
    clauses: list[Clause]

    @property
    def nodes(self) -> set[int]:
        return {n for c in self.clauses for r in c.refs for n in r.nodes}

    def affirmed_nodes(self) -> set[int]:
        return {n for c in self.clauses if not c.negated for r in c.refs for n in r.nodes}


class ClaimReader:
    """Reads the steps of a trace into clauses of entity references, resolving coreferences."""

    def __init__(
        self, kg: KnowledgeGraph, index: EntityIndex, type_words: dict[str, list[str]] | None = None
    ):
        self.kg = kg
        self.index = index
        words = type_words or default_type_words()
        self.type_of_word: dict[str, set[str]] = {}
        for kg_type in kg.types:
            for group, group_words in words.items():
                lowered = kg_type.lower()
                if group.lower() == lowered or any(w in lowered.split("/") for w in group_words):
                    for w in group_words:
                        self.type_of_word.setdefault(w.lower(), set()).add(kg_type)

    def read(
        self, steps: list[tuple[int, str]], path: KGPath | None = None, *, resolve: bool = True
    ) -> list[StepClaims]:
        """(index, text) steps as clauses; ``resolve=False`` keeps named entities only."""
        path_nodes = self._path_nodes(path)
        out: list[StepClaims] = []
        for index, text in steps:
            parts: list[Clause] = []
            for part in clauses(text):
                earlier = [c.refs for c in reversed(parts)] + [
                    [r for c in s.clauses for r in c.refs] for s in reversed(out)
                ]
                parts.append(self._clause(part, earlier, path_nodes, resolve))
            out.append(StepClaims(index, text, parts))
        return out

    def _path_nodes(self, path: KGPath | None) -> list[int]:
        if path is None:
            return []
        found = (self.kg.node_by_id(n.id, n.type) for n in path.nodes)
        return [n for n in found if n is not None]

    def _clause(self, text: str, earlier: list[list[Ref]], path_nodes: list[int], resolve: bool) -> Clause:
        words = words_of(text)
        written = re.findall(r"[0-9A-Za-z]+", text)
        named = [
            Ref(a, b, tuple(nodes), " ".join(written[a:b]), True) for a, b, nodes in self.index.mentions(text)
        ]
        taken = {i for r in named for i in range(r.start, r.end)}
        refs = list(named)
        unresolved: list[str] = []
        for start, end, types in self._coreferences(words, taken, named) if resolve else []:
            preceding = [r for r in refs if r.end <= start] if types is not None else []
            nodes = self._antecedent(types, [preceding, *earlier], path_nodes)
            phrase = " ".join(written[start:end])
            if nodes:
                meant = " / ".join(self.kg.names[n] for n in nodes[:3]) + (" / …" if len(nodes) > 3 else "")
                refs.append(Ref(start, end, tuple(nodes), f"{phrase} (= {meant})", False))
            else:
                unresolved.append(phrase)
        refs.sort(key=lambda r: r.start)
        return Clause(text, words, refs, is_negated(text), unresolved)

    def _coreferences(
        self, words: list[str], taken: set[int], named: list[Ref]
    ) -> list[tuple[int, int, set[str] | None]]:
        """(start, end, types or None for "it") of each coreference phrase outside named mentions."""
        starts = {r.start for r in named}
        found: list[tuple[int, int, set[str] | None]] = []
        for i, word in enumerate(words):
            if i in taken:
                continue
            if word in _PRONOUNS:
                found.append((i, i + 1, None))
                continue
            types = self.type_of_word.get(word)
            if not types or i == 0 or words[i - 1] not in _DETERMINERS or (i + 1) in taken:
                continue
            gap = i + 1
            while gap < len(words) and words[gap] in _APPOSITION_GAP:
                gap += 1
            if gap in starts:  # "the gene SLC9A1", "the protein encoded by SLC9A1": an apposition
                continue
            found.append((i - 1, i + 1, types))
        return found

    def _antecedent(
        self, types: set[str] | None, earlier: list[list[Ref]], path_nodes: list[int]
    ) -> list[int]:
        """What a coreference stands for: the entities of its type in the nearest earlier clause or
        step that has one ("it": every entity there), else the path's nodes of its type."""
        for refs in earlier:
            fitting = [n for r in refs for n in r.nodes if types is None or self.kg.type_of(n) in types]
            if fitting:
                return list(dict.fromkeys(fitting))
        if types is None:
            return []
        return [n for n in path_nodes if self.kg.type_of(n) in types]


_CONCLUSION = re.compile(r"\banswer\b", re.IGNORECASE)


def is_conclusion(step: StepClaims, answer_nodes: set[int]) -> bool:
    """A step that gives the answer: names the path's end, or speaks of "the answer"."""
    named = {n for c in step.clauses for r in c.refs if r.named for n in r.nodes}
    return bool(named & answer_nodes) or _CONCLUSION.search(step.text) is not None
