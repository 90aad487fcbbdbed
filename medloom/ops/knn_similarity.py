"""Nearest neighbours over the bank: TF-IDF cosine (no model needed), cosine and top-k (for
embeddings too; they come from ``LLMClient.embed``)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "which",
        "with",
        "what",
        "who",
        "whom",
        "most",
        "following",
    ]
)


def tokenize(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def top_k(scores: Sequence[float], k: int) -> list[int]:
    """Indices of the ``k`` highest scores; equal scores keep bank order (deterministic)."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]


class TfidfIndex:
    """Smoothed TF-IDF vectors with cosine similarity, in pure Python."""

    def __init__(self, documents: Sequence[str]):
        self.docs = [Counter(tokenize(d)) for d in documents]
        df: Counter[str] = Counter()
        for doc in self.docs:
            df.update(doc.keys())
        n = len(self.docs)
        self.idf = {w: math.log((1 + n) / (1 + c)) + 1 for w, c in df.items()}
        self.vectors = [self._weigh(doc) for doc in self.docs]

    def _weigh(self, counts: Counter[str]) -> dict[str, float]:
        vec = {w: (1 + math.log(c)) * self.idf.get(w, 0.0) for w, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        return {w: v / norm for w, v in vec.items() if v}

    def scores(self, query: str) -> list[float]:
        q = self._weigh(Counter(tokenize(query)))
        return [sum(v * doc.get(w, 0.0) for w, v in q.items()) for doc in self.vectors]
