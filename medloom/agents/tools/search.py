"""Passage search (tool set ``search``): BM25 (``bm25s``) over a JSONL corpus of passages
(``{"id": ..., "title": ..., "text": ...}`` per line), or over a demo corpus built from the
recipe's knowledge graph (one passage per entity listing its facts), so recipes run offline."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medloom.agents.tools.base import Tool, ToolEnv, register_toolset, tool
from medloom.kg.model import KnowledgeGraph

if TYPE_CHECKING:
    import bm25s


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str


class PassageIndex:
    """A BM25 index over passages (English stop words removed)."""

    def __init__(self, passages: list[Passage]):
        if not passages:
            raise ValueError("the passage corpus is empty: give a JSONL file with one passage per line")
        import bm25s  # with numba: imported when an index is built, not when the registry loads

        self.passages = passages
        self._bm25: bm25s.BM25 = bm25s.BM25()
        tokens = bm25s.tokenize(
            [f"{p.title}\n{p.text}" for p in passages], stopwords="en", show_progress=False
        )
        self._bm25.index(tokens, show_progress=False)
        self._lock = threading.Lock()

    def search(self, query: str, k: int = 3) -> list[tuple[Passage, float]]:
        import bm25s

        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not tokens.vocab:
            return []
        k = max(1, min(k, len(self.passages)))
        with self._lock:
            docs, scores = self._bm25.retrieve(tokens, k=k, show_progress=False)
        return [(self.passages[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]


def read_passages(path: Path) -> list[Passage]:
    """Passages from a JSONL file; an error names the line that is not a passage."""
    out: list[Passage] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                out.append(
                    Passage(id=str(row.get("id", n)), title=str(row.get("title", "")), text=str(row["text"]))
                )
            except (ValueError, KeyError, AttributeError) as exc:
                raise ValueError(f"{path}:{n}: not a passage ({exc}); each line needs a 'text'") from None
    return out


def kg_passages(kg: KnowledgeGraph, *, max_facts: int = 40) -> list[Passage]:
    """One passage per entity with at least one edge: its type and up to ``max_facts`` facts."""
    out: list[Passage] = []
    for node, name in enumerate(kg.names):
        facts: list[str] = []
        for nbr, rel, forward in kg.neighbours(node):
            head, tail = (name, kg.names[nbr]) if forward else (kg.names[nbr], name)
            facts.append(f"{head} {rel.replace('_', ' ')} {tail}.")
        if not facts:
            continue
        facts = sorted(set(facts))[:max_facts]
        text = f"{name} is a {kg.type_of(node).lower()}. " + " ".join(facts)
        out.append(Passage(id=kg.ids[node], title=name, text=text))
    return out


_indexes: dict[Any, PassageIndex] = {}
_indexes_lock = threading.Lock()


def _index(key: Any, passages: Iterable[Passage] | None = None, path: Path | None = None) -> PassageIndex:
    with _indexes_lock:
        if key not in _indexes:
            _indexes[key] = PassageIndex(list(passages) if passages is not None else read_passages(path))  # type: ignore[arg-type]
        return _indexes[key]


def search_tool(index: PassageIndex, *, k: int = 3, max_chars: int = 600) -> Tool:
    @tool
    def search(query: str, k: int = k) -> list[dict[str, Any]]:
        """Search medical passages by keywords; returns the best matching passages."""
        hits = index.search(query, k=min(max(k, 1), 10))
        return [
            {"id": p.id, "title": p.title, "text": p.text[:max_chars], "score": round(score, 2)}
            for p, score in hits
        ] or [{"text": "no passage matches; try other keywords"}]

    return search


@register_toolset("search")
def search_toolset(env: ToolEnv, params: dict[str, Any]) -> list[Tool]:
    """``{search: {corpus: demo | PATH.jsonl, k: 3}}``: ``demo`` (the default) indexes the recipe's
    knowledge graph, one passage per entity."""
    unknown = set(params) - {"corpus", "k", "max_chars"}
    if unknown:
        raise ValueError(
            f"tool set 'search': unknown params {sorted(unknown)} (params: corpus, k, max_chars)"
        )
    corpus = str(params.get("corpus", "demo"))
    if corpus == "demo":
        kg = env.kg.kg
        index = _index(("kg", id(kg)), passages=kg_passages(kg))
    else:
        path = Path(corpus).expanduser()
        if not path.is_absolute() and env.base_dir is not None and (env.base_dir / path).exists():
            path = env.base_dir / path
        if not path.exists():
            raise ValueError(f"tool set 'search': corpus not found: {path} (a JSONL of passages, or 'demo')")
        index = _index(("file", str(path.resolve()), path.stat().st_mtime), path=path)
    return [search_tool(index, k=int(params.get("k", 3)), max_chars=int(params.get("max_chars", 600)))]
