"""Entity linking for MedReason-style recipes: parse extracted names, map them to KG nodes."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel

from medloom.kg.lookup import EntityIndex, Match

_LIST_LINE = re.compile(r"^\s*(question|answer)\s+entities\s*:\s*(.*)$", re.I)
_NUMBER = re.compile(r"\d+")


def parse_entity_lists(text: str) -> tuple[list[str], list[str]]:
    """Names from the lines "Question entities: a; b" and "Answer entities: c" (``,`` or ``;``)."""
    found: dict[str, list[str]] = {"question": [], "answer": []}
    for line in text.splitlines():
        m = _LIST_LINE.match(line)
        if m:
            names = [n.strip(" .\"'") for n in re.split(r"[;,]", m.group(2))]
            found[m.group(1).lower()] += [n for n in names if n and n.lower() not in ("none", "n/a")]
    return found["question"], found["answer"]


def parse_numbers(text: str, upper: int) -> list[int]:
    """Distinct 1-based numbers ≤ ``upper`` in ``text``, in order (for "keep paths 2, 5")."""
    out: list[int] = []
    for raw in _NUMBER.findall(text):
        n = int(raw)
        if 1 <= n <= upper and n not in out:
            out.append(n)
    return out


class LinkedEntity(BaseModel):
    mention: str
    id: str
    name: str
    type: str
    score: float
    how: Literal["exact", "fuzzy", "llm tie-break", "mention"]


class Candidates(BaseModel):
    """Where a mention could link: one clear node, several close ones (for a tie-break), or none."""

    mention: str
    matches: list[tuple[int, str, float]]
    """(node, matched name, score), best first."""
    ambiguous: bool


def candidates(
    index: EntityIndex, mention: str, *, min_score: float, margin: float, limit: int
) -> Candidates:
    """Exact name or synonym first; else fuzzy matches ≥ ``min_score``; ambiguous when the best
    two distinct nodes score within ``margin`` of each other."""
    matches: list[Match] = index.fuzzy(mention, limit=limit, min_score=min_score)
    best = [(m.node, m.name, m.score) for m in matches]
    close = [m for m in matches if matches and m.score >= matches[0].score - margin]
    ambiguous = len({m.node for m in close}) > 1
    return Candidates(mention=mention, matches=best, ambiguous=ambiguous)


def linked(index: EntityIndex, mention: str, node: int, score: float, how: str) -> LinkedEntity:
    kg = index.kg
    return LinkedEntity(
        mention=mention,
        id=kg.ids[node],
        name=kg.names[node],
        type=kg.type_of(node),
        score=score,
        how=how,  # type: ignore[arg-type]
    )


def text_mentions(index: EntityIndex, text: str) -> list[tuple[str, int]]:
    """(mention, node) for each KG name written in ``text`` (the first node of each name)."""
    words = re.findall(r"[0-9A-Za-z]+", text)
    return [(" ".join(words[a:b]), nodes[0]) for a, b, nodes in index.mentions(text)]
