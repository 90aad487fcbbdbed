"""KG grounding: every relation a trace (or an item's path) asserts must be a KG edge."""

from __future__ import annotations

import re
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from medloom.core.records import Item, Trace, Verdict
from medloom.kg.paths import KGPath, hop_is_edge
from medloom.kg.spec import KGSpec
from medloom.kg.store import LoadedKG, load_kg
from medloom.kg.verbalise import cue, relation_cues, relation_key, verbalise_path
from medloom.verifiers.base import Check, register_check

if TYPE_CHECKING:
    from medloom.verifiers.base import CheckResources


@register_check("kg_grounding")
class KGGrounding(Check):
    """Flags steps that name two or more KG entities of which one is linked to none of the
    others by a KG edge (in either direction), and, with ``path_field``, a path in
    ``item.data[path_field]`` whose hops are not real edges.

    With ``check_relations``, a step that uses a relation's wording ("treats", "is bound by", from
    medloom/kg/data/phrases.yaml) must name two entities the KG joins by such a relation.

    With ``cover_path`` (a field of ``item.data`` holding a KG path), every hop of that path
    must be stated by one step naming both of its entities: a trace that skips a hop of the
    item's path fails.

    ``source``/``format`` choose the graph; by default the recipe's ``resources.kg`` (or the demo).
    """

    name = "kg_grounding"

    def __init__(
        self,
        path_field: str | None = None,
        steps: bool = True,
        check_relations: bool = False,
        cover_path: str | None = None,
        source: str | None = None,
        format: str = "auto",
        kg: KGSpec | None = None,
        base_dir: Path | None = None,
    ):
        self.path_field = path_field
        self.check_steps = steps
        self.check_relations = check_relations
        self.cover_path = cover_path
        try:
            self.spec = KGSpec(source=source, format=format) if source else (kg or KGSpec())  # type: ignore[arg-type]
        except ValidationError as exc:
            raise TypeError(f"kg_grounding: {exc.errors()[0]['msg']}") from None
        self.base_dir = base_dir
        self._loaded: LoadedKG | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any], resources: CheckResources | None = None) -> KGGrounding:
        return cls(**params, kg=resources.kg if resources is not None else None)

    @property
    def loaded(self) -> LoadedKG:
        if self._loaded is None:
            self._loaded = load_kg(self.spec, self.base_dir)
        return self._loaded

    def check(self, item: Item, trace: Trace) -> Verdict:
        reasons: list[str] = []
        flags: dict[int, str] = {}
        if self.path_field is not None:
            reasons += self._path_problems(item)
        if self.check_steps:
            for step in trace.steps:
                why = self.unsupported(step.text)
                if why:
                    flags[step.index] = why
            if flags:
                reasons.append(f"claims not in the KG at steps {sorted(flags)}")
        if self.cover_path is not None:
            uncovered, missing = self._uncovered_hops(item, trace)
            reasons += uncovered
            flags = {**missing, **flags}
        if reasons:
            return self.verdict(False, reasons, step_flags=flags)
        return self.verdict(True, ["every asserted relation is a KG edge"])

    def _path_problems(self, item: Item) -> list[str]:
        raw = item.data.get(self.path_field or "")
        if raw is None:
            return [f"item has no '{self.path_field}' path to check"]
        try:
            path = KGPath.model_validate(raw)
        except ValidationError as exc:
            return [f"'{self.path_field}' is not a KG path: {exc.errors()[0]['msg']}"]
        kg = self.loaded.kg
        return [
            f"hop {i}: the KG has no '{hop.relation}' edge from {hop.head.name} to {hop.tail.name}"
            for i, hop in enumerate(path.hops, start=1)
            if not hop_is_edge(kg, hop)
        ]

    def _uncovered_hops(self, item: Item, trace: Trace) -> tuple[list[str], dict[int, str]]:
        """Reasons and step flags for the path's hops no step states (a missing hop flags the
        step at its position, or the last step when the trace is shorter than the path)."""
        raw = item.data.get(self.cover_path or "")
        if raw is None:
            return [f"item has no '{self.cover_path}' path to cover"], {}
        try:
            path = KGPath.model_validate(raw)
        except ValidationError as exc:
            return [f"'{self.cover_path}' is not a KG path: {exc.errors()[0]['msg']}"], {}
        kg, index = self.loaded.kg, self.loaded.index
        named = [{n for _, _, nodes in index.mentions(s.text) for n in nodes} for s in trace.steps]
        indices = [s.index for s in trace.steps]
        missing: list[str] = []
        flags: dict[int, str] = {}
        for i, (hop, fact) in enumerate(zip(path.hops, verbalise_path(path), strict=True), start=1):
            a, b = kg.node_by_id(hop.head.id, hop.head.type), kg.node_by_id(hop.tail.id, hop.tail.type)
            if any(a in step and b in step for step in named):
                continue
            missing.append(f"{i} ({fact})")
            at = i if i in indices else max(indices, default=1)
            flags.setdefault(at, f"no step states hop {i} of the path: {fact}")
        reasons = [f"no step states hop {', '.join(missing)} of the path"] if missing else []
        return reasons, flags

    def unsupported(self, text: str) -> str | None:
        """Why ``text`` asserts something the KG does not hold (None when it is grounded)."""
        kg, index = self.loaded.kg, self.loaded.index
        mentions = index.mentions(text)
        groups = [nodes for _, _, nodes in mentions]
        distinct = {tuple(g) for g in groups}
        if len(distinct) < 2:
            return None
        names = [" ".join(text_words) for text_words in _spans(text, mentions)]
        lonely = []
        for i, nodes in enumerate(groups):
            others = [g for j, g in enumerate(groups) if j != i and tuple(g) != tuple(nodes)]
            if not any(kg.has_edge(a, b) for g in others for a in nodes for b in g):
                lonely.append(names[i])
        named = ", ".join(dict.fromkeys(names))
        if lonely:
            unlinked = ", ".join(repr(n) for n in dict.fromkeys(lonely))
            return f"no KG edge links {unlinked} to the others named ({named})"
        return self._wrong_relation(text, groups, names) if self.check_relations else None

    def _wrong_relation(self, text: str, groups: list[list[int]], names: list[str]) -> str | None:
        """A reason when the step's relation words match no KG relation between its entities."""
        kg = self.loaded.kg
        stems = {cue(w) for w in re.findall(r"[A-Za-z]+", text)}
        cued = {rel for rel, cues in relation_cues().items() if cues & stems}
        if not cued:
            return None
        found: list[str] = []
        for i, j in combinations(range(len(groups)), 2):
            for a in groups[i]:
                for b in groups[j]:
                    rels = [*kg.relations_between(a, b), *kg.relations_between(b, a)]
                    if any(relation_key(r) in cued for r in rels):
                        return None
                    found += [f"{names[i]} {r} {names[j]}" for r in rels]
        if not found:
            return None
        wording, facts = ", ".join(sorted(cued)), "; ".join(dict.fromkeys(found))
        return f"the wording ({wording}) fits no KG edge between the entities named; the KG has: {facts}"


def _spans(text: str, mentions: list[tuple[int, int, list[int]]]) -> list[list[str]]:
    words = re.findall(r"[0-9A-Za-z]+", text)
    return [words[a:b] for a, b, _ in mentions]
