"""How text names relations and types: cue stems, the voice a sentence states a hop in, negation.

Relation cues come from ``phrases.yaml`` (the first content word of each form) plus the extra
words of ``relation_words.yaml``; type words ("drug", "the disease") come from the latter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import yaml

from medloom.core.errors import ConfigError
from medloom.kg.verbalise import cue, phrases, relation_cues, relation_key

WORDS_FILE = Path(__file__).parent / "data" / "relation_words.yaml"

Voice = Literal["active", "passive"]

_ARTICLES = {"the", "a", "an"}


@cache
def _words_file() -> dict[str, dict[str, list[str]]]:
    data = yaml.safe_load(WORDS_FILE.read_text(encoding="utf-8")) or {}
    for section in ("relations", "types"):
        if not isinstance(data.get(section), dict):
            raise ConfigError(f"'{section}' must map names to word lists", file=WORDS_FILE)
    return {s: {str(k): [str(w) for w in v] for k, v in data[s].items()} for s in ("relations", "types")}


@cache
def relation_stems() -> dict[str, frozenset[str]]:
    """relation key → the cue stems that name it (phrases.yaml's and relation_words.yaml's)."""
    out = {rel: set(stems) for rel, stems in relation_cues().items()}
    for rel, words in _words_file()["relations"].items():
        out.setdefault(relation_key(rel), set()).update(cue(w) for w in words)
    return {rel: frozenset(stems) for rel, stems in out.items()}


def default_type_words() -> dict[str, list[str]]:
    """Entity type → words that describe an entity of that type (``relation_words.yaml``)."""
    return dict(_words_file()["types"])


def words_of(text: str) -> list[str]:
    """Lower-case words, split the way :meth:`EntityIndex.mentions` splits (so positions agree)."""
    return [w.lower() for w in re.findall(r"[0-9A-Za-z]+", text)]


def cued_relations(words: list[str], relations: set[str] | None = None) -> list[tuple[int, str]]:
    """(word position, relation key) for every word that names a relation (of ``relations``)."""
    stems = relation_stems()
    found = []
    for i, word in enumerate(words):
        stem = cue(word)
        for rel, cues in stems.items():
            if (relations is None or rel in relations) and stem in cues:
                found.append((i, rel))
    return found


def _normal(text: str) -> str:
    return " ".join(w for w in words_of(text) if w not in _ARTICLES)


@dataclass(frozen=True)
class RelationForms:
    """The words between head and tail in each voice (articles dropped)."""

    active: str
    passive: str
    symmetric: bool
    """Both voices read the same way round ("resembles", "is associated with"): no direction."""


@cache
def relation_forms(relation: str) -> RelationForms | None:
    forms = phrases().get(relation_key(relation))
    if forms is None:
        return None
    active = _normal(forms["active"].split("{head}")[-1].split("{tail}")[0])
    passive = _normal(forms["passive"].split("{tail}")[-1].split("{head}")[0])
    type_words = {w for words in default_type_words().values() for w in words}
    core = [" ".join(w for w in m.split() if w not in type_words) for m in (active, passive)]
    return RelationForms(active=active, passive=passive, symmetric=core[0] == core[1])


_PASSIVE = re.compile(r"\b(?:is|are|was|were|be|been|being)\b(?:\s+\w+){1,2}\s+by$")


def voice(relation: str, between: str) -> Voice | None:
    """Whether the words ``between`` two entities state ``relation`` from its head (active) or its
    tail (passive); None when the relation reads the same both ways or the words do not tell."""
    forms = relation_forms(relation)
    if forms is None or forms.symmetric:
        return None
    middle = _normal(between)
    for form, which in sorted(
        ((forms.active, "active"), (forms.passive, "passive")), key=lambda f: -len(f[0])
    ):
        if form and f" {form} " in f" {middle} ":
            return which  # type: ignore[return-value]
    if _PASSIVE.search(middle):
        return "passive"
    if relation_key(relation) in {rel for _, rel in cued_relations(middle.split())}:
        return "active"
    return None


_NEGATION = re.compile(
    r"\b(?:not|never|neither|nor|cannot|no longer|unrelated|unassociated)\b|n't\b", re.IGNORECASE
)


def is_negated(text: str) -> bool:
    """Whether ``text`` denies what it states ("does not treat", "is not associated with")."""
    return _NEGATION.search(text) is not None


_CLAUSE_BREAK = re.compile(r";|\.\s+|,?\s+\bbut\b\s+|,\s+(?=not\b)|\brather than\b|\binstead of\b", re.I)


def clauses(text: str) -> list[str]:
    """``text`` split where a statement may change polarity ("treats X, not Y"; "…; but …")."""
    return [c for c in (part.strip() for part in _CLAUSE_BREAK.split(text)) if c]


def negate_form(form: str) -> str:
    """The denial of a phrases.yaml form: "{head} treats {tail}" → "{head} does not treat {tail}",
    "{head} is associated with {tail}" → "{head} is not associated with {tail}"."""
    words = re.sub(r"\{(head|tail)\}", " ", form)
    be = re.search(r"\b(is|are)\b", words)
    verb = re.search(r"\b(?!is\b)([a-z]+s)\b", words)
    target = be if be and (verb is None or be.start() < verb.start()) else verb
    if target is None:
        return f"it is not the case that {form}"
    start = form.index(target.group(1), form.index("}") if form.startswith("{") else 0)
    word = target.group(1)
    denial = f"{word} not" if target is be else f"does not {word[:-1]}"
    return form[:start] + denial + form[start + len(word) :]


def denial(relation: str, head: str, tail: str, *, forward: bool = True) -> str:
    """The sentence denying ``head relation tail`` (in the passive form when not ``forward``)."""
    forms = phrases().get(relation_key(relation))
    if forms is None:
        return f"{head} is not linked to {tail} by {relation}"
    return negate_form(forms["active" if forward else "passive"]).format(head=head, tail=tail)
