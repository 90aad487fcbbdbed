"""Question fidelity: a generated question describes its own KG path and nothing else."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from medloom.core.records import Item, Trace, Verdict
from medloom.kg.paths import KGPath
from medloom.kg.spec import KGSpec
from medloom.kg.verbalise import relation_key
from medloom.kg.wording import cued_relations, default_type_words, words_of
from medloom.verifiers.base import register_check
from medloom.verifiers.kg_check import KGCheck

if TYPE_CHECKING:
    pass


def relation_runs(path: KGPath) -> list[str]:
    """The path's relations in walking order, a run of the same relation counted once ("asthma
    localizes to the lung, a site of X" reads as one "of one organ" clause)."""
    runs: list[str] = []
    for rel in (relation_key(r) for r in path.relations):
        if not runs or runs[-1] != rel:
            runs.append(rel)
    return runs


@register_check("question_fidelity")
class QuestionFidelity(KGCheck):
    """Fails a question that does not describe its own path (``item.data[path_field]``):

    - it names the path's start (the anchor);
    - it uses the wording of each of the path's relations, in walking order (phrases.yaml and
      relation_words.yaml; a run of one relation needs its wording once);
    - it uses no wording of a relation of the KG that the path does not have;
    - it asks "which/what <word>" for the answer's type, and describes no type the path lacks
      ("of one organ" when the path has no anatomy);
    - it names no KG entity off the path (a distractor, another drug).

    ``text``: ``question`` (the item's) or ``trace`` (``trace.meta['question']``).
    ``type_words`` overrides relation_words.yaml's words per entity type.
    """

    name = "question_fidelity"

    def __init__(
        self,
        path_field: str = "path",
        text: str = "question",
        type_words: dict[str, list[str]] | None = None,
        source: str | None = None,
        format: str = "auto",
        kg: KGSpec | None = None,
        base_dir: Path | None = None,
    ):
        self.path_field = path_field
        self.text = text
        self.type_words = type_words or default_type_words()
        super().__init__(source=source, format=format, kg=kg, base_dir=base_dir)

    def check(self, item: Item, trace: Trace) -> Verdict:
        question = str(trace.meta.get("question", "")) if self.text == "trace" else item.question
        raw = item.data.get(self.path_field)
        if raw is None:
            return self.verdict(False, [f"item has no '{self.path_field}' path to compare the question with"])
        try:
            path = KGPath.model_validate(raw)
        except ValidationError as exc:
            return self.verdict(False, [f"'{self.path_field}' is not a KG path: {exc.errors()[0]['msg']}"])
        problems = self.problems(question, path)
        if problems:
            return self.verdict(False, problems)
        return self.verdict(True, ["the question describes its path"])

    def _words_to_types(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for kg_type in self.loaded.kg.types:
            for group, words in self.type_words.items():
                if group.lower() == kg_type.lower() or any(w in kg_type.lower().split("/") for w in words):
                    for w in words:
                        out.setdefault(w.lower(), set()).add(kg_type)
        return out

    def problems(self, question: str, path: KGPath) -> list[str]:
        """What ``question`` gets wrong about ``path`` (empty when it describes it)."""
        kg, index = self.loaded.kg, self.loaded.index
        words = words_of(question)
        out: list[str] = []
        path_nodes = {n for n in (kg.node_by_id(p.id, p.type) for p in path.nodes) if n is not None}
        start = kg.node_by_id(path.start.id, path.start.type)
        mentions = index.mentions(question)
        if start not in {n for _, _, nodes in mentions for n in nodes}:
            out.append(f"does not name the anchor {path.start.name!r}")
        off = [" ".join(words[a:b]) for a, b, nodes in mentions if not set(nodes) & path_nodes]
        if off:
            out.append(f"names {', '.join(repr(o) for o in dict.fromkeys(off))}, not on the path")
        runs = relation_runs(path)
        inside = {i for a, b, _ in mentions for i in range(a, b)}
        words = [w if i not in inside else "" for i, w in enumerate(words)]  # names cue no relation
        cues = cued_relations(words, set(runs))
        said = [rel for _, rel in sorted(cues)]
        said = [rel for i, rel in enumerate(said) if i == 0 or said[i - 1] != rel]
        if said != runs:
            reads = " → ".join(said) or "no relation"
            out.append(
                f"does not describe the path's relations in order ({' → '.join(runs)}; it reads {reads})"
            )
        on_path = {pos for pos, _ in cues}  # a word naming a path relation names no other
        kg_relations = {relation_key(r) for r in kg.relations} - set(runs)
        foreign = [rel for pos, rel in cued_relations(words, kg_relations) if pos not in on_path]
        if foreign:
            out.append(
                f"uses the wording of {', '.join(dict.fromkeys(foreign))}, which the path does not have"
            )
        types = self._words_to_types()
        path_types = {p.type for p in path.nodes}
        taken = {i for a, b, _ in mentions for i in range(a, b)}
        absent = [
            w for i, w in enumerate(words) if i not in taken and w in types and not types[w] & path_types
        ]
        if absent:
            out.append(f"describes a {', '.join(dict.fromkeys(absent))}; the path has none")
        wanted = [w for w, kinds in types.items() if path.end.type in kinds]
        pattern = rf"\b(?:which|what)(?: \w+)? (?:{'|'.join(map(re.escape, wanted))})\b"
        if wanted and re.search(pattern, " ".join(words)) is None:
            out.append(f"does not ask 'which {path.end.type.lower()}' (the answer's type)")
        return out
