"""Entity lookup: exact by name or synonym (case-insensitive), and fuzzy with a 0–100 score."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from medloom.kg.model import KnowledgeGraph

_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalise_name(text: str) -> str:
    """Lowercase, punctuation and spacing folded: ``"Non-small cell  Lung"`` → ``"non small cell lung"``."""
    return _NON_WORD.sub(" ", text.lower()).strip()


@dataclass(frozen=True)
class Match:
    node: int
    name: str
    """The name or synonym that matched."""
    score: float
    """100 for an exact (normalised) match."""


class EntityIndex:
    """Names and synonyms of every node, for exact and fuzzy lookup."""

    def __init__(self, kg: KnowledgeGraph):
        self.kg = kg
        self.by_name: dict[str, list[int]] = {}
        for node, name in enumerate(kg.names):
            self._add(name, node)
        for node, synonyms in kg.synonyms.items():
            for synonym in synonyms:
                self._add(synonym, node)
        self._keys: list[str] = list(self.by_name)
        self.max_words = max((k.count(" ") + 1 for k in self._keys), default=1)

    def _add(self, name: str, node: int) -> None:
        key = normalise_name(name)
        if key:
            nodes = self.by_name.setdefault(key, [])
            if node not in nodes:
                nodes.append(node)

    def lookup(self, name: str, type_name: str | None = None) -> list[int]:
        """Nodes whose name or a synonym equals ``name`` (ignoring case and punctuation)."""
        nodes = self.by_name.get(normalise_name(name), [])
        return [n for n in nodes if type_name is None or self.kg.type_of(n) == type_name]

    def fuzzy(
        self, name: str, *, type_name: str | None = None, limit: int = 5, min_score: float = 80.0
    ) -> list[Match]:
        """Best matches by rapidfuzz's WRatio; exact matches first with score 100."""
        exact = [Match(n, name, 100.0) for n in self.lookup(name, type_name)]
        if exact:
            return exact[:limit]
        query = normalise_name(name)
        if not query:
            return []
        found: list[Match] = []
        for key, score, _ in process.extract(
            query, self._keys, scorer=fuzz.WRatio, limit=limit * 4, score_cutoff=min_score
        ):
            if min(len(key), len(query)) < 0.5 * max(len(key), len(query)):
                continue  # WRatio scores substrings high: "lung" is not "cancer of the lung"
            for node in self.by_name[key]:
                if type_name is None or self.kg.type_of(node) == type_name:
                    found.append(Match(node, key, float(score)))
        found.sort(key=lambda m: (-m.score, m.node))
        return found[:limit]

    def mentions(self, text: str) -> list[tuple[int, int, list[int]]]:
        """Entity names in ``text``: (start word, end word, nodes), longest match first, no overlaps.

        Short all-capital names (gene symbols such as ``CAT``) only match when written in capitals.
        """
        words = re.findall(r"[0-9A-Za-z]+", text)
        lowered = [w.lower() for w in words]
        found: list[tuple[int, int, list[int]]] = []
        i = 0
        while i < len(words):
            for size in range(min(self.max_words, len(words) - i), 0, -1):
                key = " ".join(lowered[i : i + size])
                nodes = self.by_name.get(key)
                if nodes and size == 1 and len(key) <= 4 and not words[i].isupper():
                    nodes = [n for n in nodes if not self.kg.names[n].isupper()]
                if nodes:
                    found.append((i, i + size, nodes))
                    i += size
                    break
            else:
                i += 1
        return found
