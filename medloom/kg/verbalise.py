"""Turn hops and paths into sentences, with relation-specific phrasing in both directions."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import yaml

from medloom.core.errors import ConfigError
from medloom.kg.paths import Hop, KGPath

PHRASES_FILE = Path(__file__).parent / "data" / "phrases.yaml"


def relation_key(relation: str) -> str:
    return re.sub(r"[\s\-/]+", "_", relation.strip().lower())


@cache
def phrases(path: Path = PHRASES_FILE) -> dict[str, dict[str, str]]:
    """relation key → {"active": ..., "passive": ...}, from a YAML file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for relation, forms in data.items():
        if not isinstance(forms, dict) or not {"active", "passive"} <= set(forms):
            raise ConfigError(f"relation '{relation}' needs 'active' and 'passive' phrases", file=path)
    return {relation_key(str(k)): v for k, v in data.items()}


def verbalise_hop(hop: Hop, *, mask: str | None = None, masked_id: str | None = None) -> str:
    """The sentence for ``hop`` in walking order; the node with id ``masked_id`` reads as ``mask``."""

    def name(node_id: str, node_name: str) -> str:
        return mask if mask is not None and node_id == masked_id else node_name

    head = name(hop.head.id, hop.head.name)
    tail = name(hop.tail.id, hop.tail.name)
    forms = phrases().get(relation_key(hop.relation))
    if forms is None:
        return f"{head} — {hop.relation} → {tail}"
    return (forms["active"] if hop.forward else forms["passive"]).format(head=head, tail=tail)


def verbalise_path(path: KGPath, *, mask_end: str | None = None) -> list[str]:
    """One sentence per hop; with ``mask_end`` the end entity reads as that placeholder."""
    return [verbalise_hop(h, mask=mask_end, masked_id=path.end.id if mask_end else None) for h in path.hops]


def kg_facts(path: KGPath) -> list[str]:
    """One sentence per hop as the KG states it (head first, active voice), in walking order."""
    stated = [h.model_copy(update={"source": h.head, "target": h.tail, "forward": True}) for h in path.hops]
    return [verbalise_hop(h) for h in stated]


_NOT_CUES = {"is", "are", "the", "a", "an", "of", "by", "with", "to", "in", "for", "and", "not", "does"}
_NOT_CUES |= {"protein", "encoded", "gene", "enzyme", "transporter", "carrier", "used", "has"}


def cue(word: str) -> str:
    """The stem a relation cue is matched by ("treats", "treated" → "trea")."""
    return word.lower()[:4]


@cache
def relation_cues() -> dict[str, frozenset[str]]:
    """relation key → cue stems: the first content word of its active and passive phrases."""
    out: dict[str, frozenset[str]] = {}
    for relation, forms in phrases().items():
        stems = set()
        for form in (forms["active"], forms["passive"]):
            words = re.findall(r"[a-z]+", re.sub(r"\{(head|tail)\}", " ", form.lower()))
            content = [w for w in words if w not in _NOT_CUES]
            if content:
                stems.add(cue(content[0]))
        out[relation] = frozenset(stems)
    return out


_ORDINALS = ["", "second ", "third ", "fourth ", "fifth "]


def role_question(path: KGPath) -> str:
    """A question walking ``path`` that names only its start: every later entity is described
    by its type and order ("a disease", "that disease", "a second disease"), the end is asked
    for ("which gene"), e.g. "Acamprosate treats a disease; that disease resembles a second
    disease; ... binds the protein encoded by which gene?"."""
    seen: dict[str, int] = {}
    first: dict[str, str] = {}
    later: dict[str, str] = {}
    for node in path.intermediates:
        kind = node.type.lower()
        k = seen.get(kind, 0)
        seen[kind] = k + 1
        ordinal = _ORDINALS[min(k, len(_ORDINALS) - 1)]
        first[node.id] = f"a {ordinal}{kind}"
        later[node.id] = f"the {ordinal}{kind}" if k else f"that {kind}"
    end, start = path.end, path.start
    introduced: set[str] = set()

    def describe(node_id: str, node_type: str, node_name: str) -> str:
        if node_id == end.id and node_type == end.type:
            return f"which {end.type.lower()}"
        if node_id == start.id and node_type == start.type:
            return node_name
        if node_id in introduced:
            return later[node_id]
        introduced.add(node_id)
        return first[node_id]

    clauses = []
    for hop in path.hops:
        # the walking order: the source was described before the target is introduced
        src = describe(hop.source.id, hop.source.type, hop.source.name)
        tgt = describe(hop.target.id, hop.target.type, hop.target.name)
        head, tail = (src, tgt) if hop.forward else (tgt, src)
        forms = phrases().get(relation_key(hop.relation))
        if forms is None:
            clause = f"{head} {hop.relation} {tail}"
        else:
            clause = (forms["active"] if hop.forward else forms["passive"]).format(head=head, tail=tail)
        clause = re.sub(r"\b(?:the gene|the) (a|that|the|which) ", r"\1 ", clause)
        clauses.append(re.sub(r"\bthe which ", "which ", clause))
    text = "; ".join(clauses)
    return text[:1].upper() + text[1:] + "?"
