"""N-gram decontamination against evaluation sets (Fully Open Meditron style).

``op: decontaminate`` indexes the word n-grams of every question (and its options) in the
evaluation sets named in ``params.eval_sets``. An item whose own n-grams overlap an evaluation
set by at least ``threshold`` (the share of its n-grams found there) is rejected with code
``contaminated``; with ``target: traces`` the check runs on each trace's text instead (for
generated questions) and contaminated traces are dropped. Every removal also writes a ``note``
event naming the evaluation set, the closest evaluation item and the overlap.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medloom.agents.context import AgentContext
from medloom.core.errors import MedloomError
from medloom.core.events import Note
from medloom.core.notes import ListingColumn, NoteListing, NoteSchema, NoteView, register_note
from medloom.core.records import Item, Trace
from medloom.data.items import iter_items
from medloom.data.readers import DatasetSpec, FieldMap, Format
from medloom.nodes.protocol import Drop, NodeOutput
from medloom.nodes.step import BaseOp, OpBuild, OpParams, register_op

_WORD = re.compile(r"\w+")


class EvalSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    """JSONL, CSV, Parquet, a saved dataset or a Hub name; relative paths are resolved from the
    recipe's directory."""
    format: Format = "auto"
    split: str = "test"
    """For a Hub dataset or a saved DatasetDict: evaluation sets are usually the test split."""
    config_name: str | None = None
    name: str | None = None
    """Shown in reports (default: the file name)."""
    fields: FieldMap = Field(default_factory=lambda: FieldMap(answer=None))


class DecontaminateParams(OpParams):
    eval_sets: list[EvalSet] = Field(min_length=1)
    n: int = Field(default=8, ge=1)
    """N-gram length in words (Meditron: 8)."""
    threshold: float = Field(default=0.5, gt=0, le=1)
    """Remove when at least this share of the text's n-grams occur in an evaluation set."""
    include_options: bool = True
    """Count the option texts as part of the question."""
    target: Literal["item", "traces"] = "item"


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """Word n-grams; a text shorter than ``n`` words is one n-gram of all its words."""
    toks = words(text)
    if not toks:
        return set()
    if len(toks) < n:
        return {tuple(toks)}
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def item_text(item: Item, include_options: bool) -> str:
    parts = [item.question]
    if include_options and item.options:
        parts.extend(item.options.values())
    return "\n".join(parts)


@dataclass
class Match:
    eval_set: str
    overlap: float
    """Share of the checked text's n-grams found in the evaluation set."""
    closest_id: str
    closest_shared: int
    shared_example: str


@dataclass
class NgramIndex:
    """N-gram → ids of the evaluation items containing it, for one evaluation set."""

    name: str
    n: int
    postings: dict[tuple[str, ...], list[str]]
    size: int

    @classmethod
    def build(cls, spec: EvalSet, n: int, include_options: bool, base_dir: Path | None) -> NgramIndex:
        postings: dict[tuple[str, ...], list[str]] = defaultdict(list)
        size = 0
        data = DatasetSpec(
            path=spec.path,
            format=spec.format,
            split=spec.split,
            config_name=spec.config_name,
            fields=spec.fields,
        )
        for _, entry in iter_items(data, base_dir):
            if isinstance(entry, Exception):
                continue
            size += 1
            ident = str(entry.data.get("id") or entry.data.get("realidx") or f"row {entry.index}")
            for gram in ngrams(item_text(entry, include_options), n):
                postings[gram].append(ident)
        return cls(spec.name or Path(spec.path).name, n, dict(postings), size)

    def check(self, text: str) -> Match | None:
        grams = ngrams(text, self.n)
        shared = [g for g in grams if g in self.postings]
        if not grams or not shared:
            return None
        by_item = Counter(i for g in shared for i in set(self.postings[g]))
        closest, count = min(by_item.items(), key=lambda kv: (-kv[1], kv[0]))
        example = " ".join(sorted(shared)[0])
        return Match(self.name, len(shared) / len(grams), closest, count, example)


@register_op("decontaminate")
class Decontaminate(BaseOp):
    """Remove items (or traces) whose n-grams overlap an evaluation set."""

    Params = DecontaminateParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        p: DecontaminateParams = self.params
        self.indexes: list[NgramIndex] = []
        for i, spec in enumerate(p.eval_sets):
            try:
                index = NgramIndex.build(spec, p.n, p.include_options, build.base_dir)
            except MedloomError as exc:
                raise build.fail(
                    f"cannot read evaluation set '{spec.path}': {exc}", f"params.eval_sets.{i}.path"
                ) from None
            if index.size == 0:
                raise build.fail(
                    f"evaluation set '{spec.path}' has no usable rows", f"params.eval_sets.{i}.path"
                )
            self.indexes.append(index)

    def worst(self, text: str) -> Match | None:
        """The evaluation set overlapping ``text`` most, if it reaches the threshold."""
        found = [m for m in (ix.check(text) for ix in self.indexes) if m is not None]
        found = [m for m in found if m.overlap >= self.params.threshold]
        return max(found, key=lambda m: (m.overlap, m.eval_set)) if found else None

    def describe(self, m: Match) -> str:
        return (
            f"{m.overlap:.0%} of its {self.params.n}-grams occur in eval set '{m.eval_set}' "
            f"(closest: {m.closest_id}, {m.closest_shared} shared; e.g. '{m.shared_example}')"
        )

    def note(self, item: Item, ctx: AgentContext, m: Match, trace_id: str | None) -> Note:
        return Note(
            item_id=item.id,
            attempt=ctx.attempt,
            node=ctx.node,
            kind="contaminated",
            trace_id=trace_id,
            data={
                "eval_set": m.eval_set,
                "overlap": round(m.overlap, 4),
                "threshold": self.params.threshold,
                "n": self.params.n,
                "closest_eval_id": m.closest_id,
                "shared_ngrams_with_closest": m.closest_shared,
                "example_ngram": m.shared_example,
            },
        )

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        if self.params.target == "item":
            m = self.worst(item_text(item, self.params.include_options))
            if m is None:
                if traces:
                    return NodeOutput(traces=traces)
                # Starting the graph: hand the next node (a generator) one trace to start from.
                clean = Trace(
                    id=f"{item.id}/{self.node}",
                    item_id=item.id,
                    node=self.node,
                    text=f"No {self.params.n}-gram overlap >= {self.params.threshold:g} "
                    "with the evaluation sets.",
                    meta={"carrier": True},
                )
                return NodeOutput(traces=[clean])
            ctx.send(self.note(item, ctx, m, None))
            return NodeOutput(reject=f"contaminated: {self.describe(m)}", reject_code="contaminated")
        keep: list[Trace] = []
        drops: list[Drop] = []
        for trace in traces:
            m = self.worst(trace.text)
            if m is None:
                keep.append(trace)
            else:
                ctx.send(self.note(item, ctx, m, trace.id))
                drops.append(Drop(trace, f"contaminated: {self.describe(m)}", "contaminated"))
        return NodeOutput(traces=keep, drops=drops)


def _share(value: object) -> str:
    return f"{value:.0%}" if isinstance(value, int | float) else "?"


@register_note("contaminated")
class ContaminatedNote(NoteSchema):
    """``contaminated``: the evaluation set, the overlap and the closest evaluation item."""

    listing = NoteListing(
        stats_title="contamination removed",
        card_heading="Decontamination",
        card_intro="{n} removal(s) for overlap with evaluation sets:",
        columns=(
            ListingColumn("item_id", "item", "item"),
            ListingColumn("trace_id", "trace", "trace"),
            ListingColumn("eval_set", "eval set", "eval set"),
            ListingColumn("overlap", "overlap", "overlap", percent=True),
            ListingColumn("closest_eval_id", "closest eval item", "closest"),
            ListingColumn("shared_ngrams_with_closest", "shared n-grams"),
            ListingColumn("example_ngram", "example n-gram", "e.g."),
        ),
    )

    def facets(self, data: dict[str, Any]) -> dict[str, int]:
        return {str(data.get("eval_set")): 1}

    def view(self, data: dict[str, Any]) -> NoteView:
        closest = data.get("closest_eval_id")
        return NoteView(
            title="removed by decontamination",
            label=[
                ("contaminated ", "bold red"),
                (
                    f"{_share(data.get('overlap'))} {data.get('eval_set', '?')} ~{closest}",
                    "",
                ),
            ],
            facts=[
                ("eval set", [(str(data.get("eval_set", "?")), "")]),
                (
                    "overlap",
                    [
                        (
                            f"{_share(data.get('overlap'))} of its {data.get('n', '?')}-grams "
                            f"(threshold {_share(data.get('threshold'))})",
                            "",
                        )
                    ],
                ),
                (
                    "closest",
                    [
                        (
                            f"{closest} ({data.get('shared_ngrams_with_closest')} shared)",
                            "",
                        )
                    ],
                ),
                ("e.g.", [(f"“{data.get('example_ngram', '')}”", "italic")]),
            ],
        )
