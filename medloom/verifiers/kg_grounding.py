"""KG grounding: every relation a trace (or an item's path) asserts must be a KG edge."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from medloom.core.records import Item, Trace, Verdict
from medloom.kg.paths import KGPath, hop_is_edge
from medloom.kg.spec import KGSpec
from medloom.kg.verbalise import relation_key, verbalise_path
from medloom.kg.wording import cued_relations, voice
from medloom.verifiers.base import register_check
from medloom.verifiers.kg_check import KGCheck
from medloom.verifiers.kg_claims import ClaimReader, Clause, Ref, StepClaims, is_conclusion

if TYPE_CHECKING:
    pass


@register_check("kg_grounding")
class KGGrounding(KGCheck):
    """Checks a trace's steps (and, with ``path_field``, an item's path) against the KG.

    Each step is read clause by clause; the entities a clause refers to are its named KG entities
    plus coreferences ("the disease", "this drug", "it") resolved to the entities of an earlier
    clause or step, else to the item's path (``cover_path`` or ``path_field``). A clause that
    affirms a relation fails when one of its entities is linked to none of the others by a KG
    edge; a clause that denies one ("X does not treat Y") fails when the KG holds that edge.

    - ``check_relations``: the relation wording ("treats", "is bound by", medloom/kg/data/phrases.yaml
      and relation_words.yaml) must fit a KG edge between the entities named, the right way round.
    - ``cover_path`` (a field of ``item.data`` holding a KG path): every hop of that path must be
      stated by a step naming (or referring to) both of its entities.
    - ``strict`` (needs ``cover_path``): every step must state a hop of the path or be the
      conclusion; a step naming an entity off the path as fact (a distractor, above all), a
      question restated as a step, or a relation claim whose coreference cannot be resolved fails.

    ``source``/``format`` choose the graph; by default the recipe's ``resources.kg`` (or the demo).
    """

    name = "kg_grounding"

    def __init__(
        self,
        path_field: str | None = None,
        steps: bool = True,
        check_relations: bool = False,
        cover_path: str | None = None,
        strict: bool = False,
        coreference: bool = True,
        negation: bool = True,
        source: str | None = None,
        format: str = "auto",
        kg: KGSpec | None = None,
        base_dir: Path | None = None,
    ):
        if strict and cover_path is None:
            raise TypeError("kg_grounding: strict needs cover_path (the item field holding the path)")
        self.path_field = path_field
        self.check_steps = steps
        self.check_relations = check_relations
        self.cover_path = cover_path
        self.strict = strict
        self.coreference = coreference
        self.negation = negation
        super().__init__(source=source, format=format, kg=kg, base_dir=base_dir)
        self._reader: ClaimReader | None = None

    @property
    def reader(self) -> ClaimReader:
        if self._reader is None:
            self._reader = ClaimReader(self.loaded.kg, self.loaded.index)
        return self._reader

    def check(self, item: Item, trace: Trace) -> Verdict:
        reasons: list[str] = []
        flags: dict[int, str] = {}
        if self.path_field is not None:
            reasons += self._path_problems(item)
        path, problem = self._item_path(item, self.cover_path or self.path_field)
        claims = self.read(trace, path if self.coreference else None)
        if self.check_steps:
            for step in claims:
                why = self._step_problem(step)
                if why:
                    flags[step.index] = why
            if flags:
                reasons.append(f"claims not in the KG at steps {sorted(flags)}")
        if self.cover_path is not None:
            if path is None:
                reasons.append(problem or f"item has no '{self.cover_path}' path to cover")
            else:
                uncovered, missing = self._uncovered_hops(path, claims)
                reasons += uncovered
                flags = {**missing, **flags}
                if self.strict:
                    off = self._off_path(path, claims)
                    if off:
                        reasons.append(f"steps {sorted(off)} state no hop of the item's path")
                    flags = {**off, **flags}
        if reasons:
            return self.verdict(False, reasons, step_flags=flags)
        return self.verdict(True, ["every asserted relation is a KG edge"])

    def read(self, trace: Trace, path: KGPath | None = None) -> list[StepClaims]:
        """The trace's steps as clauses of entity references (coreferences resolved when enabled)."""
        claims = self.reader.read([(s.index, s.text) for s in trace.steps], path, resolve=self.coreference)
        if not self.negation:
            for clause in (c for step in claims for c in step.clauses):
                clause.negated = False
        return claims

    def _item_path(self, item: Item, field: str | None) -> tuple[KGPath | None, str | None]:
        raw = item.data.get(field or "") if field else None
        if raw is None:
            return None, None
        try:
            return KGPath.model_validate(raw), None
        except ValidationError as exc:
            return None, f"'{field}' is not a KG path: {exc.errors()[0]['msg']}"

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

    def _hop_nodes(self, path: KGPath) -> list[tuple[int | None, int | None]]:
        kg = self.loaded.kg
        return [
            (kg.node_by_id(h.head.id, h.head.type), kg.node_by_id(h.tail.id, h.tail.type)) for h in path.hops
        ]

    def _uncovered_hops(self, path: KGPath, claims: list[StepClaims]) -> tuple[list[str], dict[int, str]]:
        """Reasons and step flags for the path's hops no step states (a missing hop flags the
        step at its position, or the last step when the trace is shorter than the path)."""
        named = [{n for c in s.clauses if not c.negated for r in c.refs for n in r.nodes} for s in claims]
        indices = [s.index for s in claims]
        missing: list[str] = []
        flags: dict[int, str] = {}
        hops = zip(self._hop_nodes(path), verbalise_path(path), strict=True)
        for i, ((a, b), fact) in enumerate(hops, start=1):
            if any(a in step and b in step for step in named):
                continue
            missing.append(f"{i} ({fact})")
            at = i if i in indices else max(indices, default=1)
            flags.setdefault(at, f"no step states hop {i} of the path: {fact}")
        reasons = [f"no step states hop {', '.join(missing)} of the path"] if missing else []
        return reasons, flags

    def _off_path(self, path: KGPath, claims: list[StepClaims]) -> dict[int, str]:
        """Strict mode: steps that state neither a hop of the path nor the conclusion, or that
        state an entity off the path as fact."""
        kg = self.loaded.kg
        hops = self._hop_nodes(path)
        on_path = {n for pair in hops for n in pair if n is not None}
        end = {n for n in (kg.node_by_id(path.end.id, path.end.type),) if n is not None}
        flags: dict[int, str] = {}
        for step in claims:
            affirmed = [c for c in step.clauses if not c.negated]
            if step.clauses and not affirmed:
                continue  # a denial only: checked against the KG like any claim, states no fact
            off = [r.text for c in affirmed for r in c.refs if r.named and not set(r.nodes) & on_path]
            if off:
                names = ", ".join(repr(t) for t in dict.fromkeys(off))
                flags[step.index] = f"states {names}, which the item's path does not hold"
                continue
            if step.text.rstrip().endswith("?"):
                flags[step.index] = "asks a question instead of stating a hop of the path"
                continue
            unresolved = [p for c in affirmed for p in c.unresolved if cued_relations(c.free_words())]
            if unresolved:
                flags[step.index] = f"cannot tell what {unresolved[0]!r} refers to"
                continue
            nodes = [{n for r in c.refs for n in r.nodes} for c in affirmed]
            states_hop = any(a in ns and b in ns for a, b in hops for ns in nodes)
            if not states_hop and not is_conclusion(step, end):
                flags[step.index] = "states no hop of the item's path and is not the conclusion"
        return flags

    def unsupported(self, text: str) -> str | None:
        """Why the single step ``text`` asserts something the KG does not hold (None when grounded)."""
        (step,) = self.reader.read([(1, text)], resolve=self.coreference)
        return self._step_problem(step)

    def _step_problem(self, step: StepClaims) -> str | None:
        for clause in step.clauses:
            why = self._clause_problem(clause)
            if why:
                return why
        return None

    def _clause_problem(self, clause: Clause) -> str | None:
        kg = self.loaded.kg
        refs = _distinct(clause.refs)
        if len(refs) < 2:
            return None
        if clause.negated:
            return self._denied_edge(clause, refs)
        lonely = []
        for ref in refs:
            others = [o for o in refs if o is not ref]
            if not any(kg.has_edge(a, b) for o in others for a in ref.nodes for b in o.nodes):
                lonely.append(ref.text)
        named = ", ".join(dict.fromkeys(r.text for r in refs))
        if lonely:
            unlinked = ", ".join(repr(n) for n in dict.fromkeys(lonely))
            return f"no KG edge links {unlinked} to the others named ({named})"
        return self._wrong_relation(clause, refs) if self.check_relations else None

    def _denied_edge(self, clause: Clause, refs: list[Ref]) -> str | None:
        """A denial ("X does not treat Y") is wrong when the KG holds that edge."""
        kg = self.loaded.kg
        cued = {rel for _, rel in cued_relations(clause.free_words())}
        for a, b in combinations(refs, 2):
            for x in a.nodes:
                for y in b.nodes:
                    rels = [*kg.relations_between(x, y), *kg.relations_between(y, x)]
                    held = [r for r in rels if not cued or relation_key(r) in cued]
                    if held:
                        return f"denies a KG edge: {kg.names[x]} {held[0]} {kg.names[y]} in the KG"
        return None

    def _wrong_relation(self, clause: Clause, refs: list[Ref]) -> str | None:
        """A reason when the clause's relation words fit no KG edge between its entities, or state
        one the wrong way round."""
        kg = self.loaded.kg
        cued = {rel for _, rel in cued_relations(clause.free_words())}
        if not cued:
            return None
        found: list[str] = []
        reversed_: list[str] = []
        for a, b in combinations(refs, 2):
            first, second = (a, b) if a.start <= b.start else (b, a)
            for x in first.nodes:
                for y in second.nodes:
                    forward = [r for r in kg.relations_between(x, y) if relation_key(r) in cued]
                    backward = [r for r in kg.relations_between(y, x) if relation_key(r) in cued]
                    for rel in dict.fromkeys(forward + backward):
                        said = voice(rel, clause.between(first, second))
                        head_first = said != "passive"
                        if said is None or (rel in forward if head_first else rel in backward):
                            return None
                        head, tail = (
                            (kg.names[x], kg.names[y]) if rel in forward else (kg.names[y], kg.names[x])
                        )
                        reversed_.append(f"{head} {rel} {tail}")
                    found += [f"{kg.names[x]} {r} {kg.names[y]}" for r in kg.relations_between(x, y)]
                    found += [f"{kg.names[y]} {r} {kg.names[x]}" for r in kg.relations_between(y, x)]
        if reversed_:
            return (
                f"states the relation the wrong way round; the KG has: {'; '.join(dict.fromkeys(reversed_))}"
            )
        if not found:
            return None
        wording, facts = ", ".join(sorted(cued)), "; ".join(dict.fromkeys(found))
        return f"the wording ({wording}) fits no KG edge between the entities named; the KG has: {facts}"


def _distinct(refs: list[Ref]) -> list[Ref]:
    """One reference per distinct entity set (a name written twice counts once)."""
    seen: set[tuple[int, ...]] = set()
    out = []
    for r in refs:
        if r.nodes not in seen:
            seen.add(r.nodes)
            out.append(r)
    return out
