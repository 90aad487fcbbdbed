"""The ``kg_chains`` item source: multiple-choice items from rare-entity chains in the KG.

Each item's answer is the chain's masked end entity; its options are the answer plus
same-type entities the chain does not lead to. The question is written later by a step
(``kg_question``); the item carries the chain, its masked facts and the names a question
must not reveal.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medloom.core.errors import ConfigError
from medloom.core.records import Item
from medloom.data.sources import SourceSpec, register_source
from medloom.kg.paths import reverse_path
from medloom.kg.samplers import Chain, ChainConstraints, distractors, iter_chains, mask_subgraph
from medloom.kg.spec import KGResources
from medloom.kg.store import LoadedKG, load_kg
from medloom.kg.verbalise import kg_facts, verbalise_path

LETTERS = "ABCDEFGHIJ"


class ChainSourceParams(BaseModel):
    """``source.params`` of ``op: kg_chains``."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(default=20, ge=1)
    """How many items to make."""
    seed: int = 0
    options: int = Field(default=5, ge=2, le=len(LETTERS))
    """Options per item: the answer plus ``options - 1`` distractors."""
    mask: Literal["tail", "head"] = "tail"
    """Which end is the answer: the far end of the chain (tail) or the rare seed (head)."""
    mask_token: str = "[ANSWER]"
    min_hops: int = Field(default=2, ge=1)
    max_hops: int = Field(default=4, ge=1)
    relations: list[str] | None = None
    node_types: list[str] | None = None
    start_types: list[str] | None = None
    end_types: list[str] | None = None
    max_seed_degree: int | None = None
    subgraph_nodes: int = Field(default=8, ge=2)

    def constraints(self) -> ChainConstraints:
        def tup(v: list[str] | None) -> tuple[str, ...] | None:
            return tuple(v) if v else None

        return ChainConstraints(
            min_hops=self.min_hops,
            max_hops=self.max_hops,
            relations=tup(self.relations),
            node_types=tup(self.node_types),
            start_types=tup(self.start_types),
            end_types=tup(self.end_types),
            max_seed_degree=self.max_seed_degree,
            subgraph_nodes=self.subgraph_nodes,
        )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:40]


def chain_item(loaded: LoadedKG, chain: Chain, index: int, p: ChainSourceParams) -> Item | None:
    """The MCQ item for ``chain`` (None when the KG has too few distractors)."""
    kg = loaded.kg
    masked = mask_subgraph(kg, chain, end=p.mask, mask=p.mask_token)
    path = chain.path if p.mask == "tail" else reverse_path(chain.path)
    wrong = distractors(kg, path, p.options - 1, p.seed)
    if len(wrong) < p.options - 1:
        return None
    rng = random.Random(f"{p.seed}:{index}:{masked.answer.id}")
    choices = [masked.answer, *wrong]
    rng.shuffle(choices)
    options = {LETTERS[i]: c.name for i, c in enumerate(choices)}
    answer = LETTERS[choices.index(masked.answer)]
    item_id = f"kg-{index:04d}-{_slug(masked.anchor.name)}-{_slug(masked.answer.name)}"
    data: dict[str, Any] = {
        "path": path.model_dump(),
        "anchor": masked.anchor.name,
        "answer_entity": masked.answer.model_dump(),
        "answer_type": masked.answer.type,
        "intermediates": [n.name for n in path.intermediates],
        "facts": masked.facts,
        "context": masked.context,
        "path_text": verbalise_path(path),
        "path_facts": kg_facts(path),  # the same hops, each as the KG states it (active voice)
        "hops": len(chain.path),
        "seed_degree": chain.seed_degree,
        "mask": p.mask_token,
    }
    return Item(id=item_id, index=index, question="", options=options, answer=answer, data=data)


class ChainSource:
    def __init__(self, source: SourceSpec, resources: KGResources, base_dir: Path | None):
        try:
            self.params = ChainSourceParams.model_validate(source.params)
            self.constraints = self.params.constraints()
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise ConfigError(
                f"{err['msg']} (source kg_chains)", key=f"source.params.{loc}".rstrip(".")
            ) from None
        self.kg_spec = resources.kg
        self.base_dir = base_dir

    def count(self) -> int | None:
        return self.params.n

    def __iter__(self) -> Iterator[tuple[int, Item | Exception]]:
        loaded = load_kg(self.kg_spec, self.base_dir)
        self._check_names(loaded)
        made = 0
        chains = iter_chains(loaded.kg, self.constraints, self.params.seed)
        for chain in islice(chains, self.params.n * 20):
            item = chain_item(loaded, chain, made, self.params)
            if item is None:
                continue
            yield made, item
            made += 1
            if made >= self.params.n:
                return

    def _check_names(self, loaded: LoadedKG) -> None:
        """Relations and types the params name must exist in this KG (e.g. after switching KGs)."""
        kg, p = loaded.kg, self.params
        for key, wanted, known in (
            ("relations", p.relations, kg.relations),
            ("node_types", p.node_types, kg.types),
            ("start_types", p.start_types, kg.types),
            ("end_types", p.end_types, kg.types),
        ):
            if wanted and not set(wanted) & set(known):
                raise ConfigError(
                    f"none of {wanted} is in this knowledge graph ({', '.join(sorted(known))}); "
                    f"set source.params.{key} to some of them, or to null for any",
                    key=f"source.params.{key}",
                )


@register_source("kg_chains")
def kg_chains(source: SourceSpec, resources: KGResources, base_dir: Path | None) -> ChainSource:
    return ChainSource(source, resources, base_dir)
