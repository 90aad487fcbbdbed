"""Turn hops and paths into sentences, with relation-specific phrasing in both directions."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import yaml

from medloom.errors import ConfigError
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
