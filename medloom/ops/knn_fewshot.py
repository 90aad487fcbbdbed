"""``op: knn_fewshot`` — Medprompt's dynamic few-shot: the k bank examples nearest the question.

The chosen examples go to ``item.data["fewshot"]`` (prompt templates render them, e.g.
``medprompt_cot``) and their ids to the emitted trace's ``meta["fewshot_ids"]``. Similarity is
TF-IDF cosine over question and options by default (no model needed), or cosine of embeddings
when ``params.embedding`` is set. Embeddings go through the run's LLM client (``client.embed``:
cached, retried, accounted, an ``embedding_call`` event in the trajectory), over the run's
endpoints serving the model, or over ``base_url`` when given::

    fewshot:
      type: step
      op: knn_fewshot
      params:
        bank: data/medprompt_bank.jsonl      # relative to the recipe
        k: 5
        embedding: {model: text-embedding-3-small, base_url: "https://api.openai.com/v1",
                    api_key_env: OPENAI_API_KEY}   # optional; default: the run's endpoints
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import Field

from medloom.agents.context import AgentContext
from medloom.agents.embedder import Embedder
from medloom.core.errors import ConfigError
from medloom.core.records import Item, Trace
from medloom.llm.settings import EndpointConfig
from medloom.nodes.protocol import NodeOutput
from medloom.nodes.step import BaseOp, OpBuild, OpParams, register_op
from medloom.ops.knn_bank import BankExample, load_bank
from medloom.ops.knn_similarity import TfidfIndex, cosine, top_k


class EmbeddingParams(OpParams):
    model: str
    """The embedding model's served name."""
    base_url: str | None = None
    """A separate OpenAI-compatible base URL; default: the run's endpoints serving ``model``."""
    api_key_env: str | None = None
    batch_size: int = Field(default=64, ge=1)


class KnnFewshotParams(OpParams):
    bank: str
    """The few-shot bank (JSONL, Parquet or a saved dataset), relative to the recipe."""
    k: int = Field(default=5, ge=1)
    embedding: EmbeddingParams | None = None
    """Embedding similarity; leave out for TF-IDF (lexical, no model)."""
    skip_same_question: bool = True
    """Never pick a bank example whose question is the item's own (the bank may overlap the items)."""


def item_text(item: Item) -> str:
    return " ".join([item.question, *(item.options or {}).values()])


@register_op("knn_fewshot")
class KnnFewshot(BaseOp):
    Params = KnnFewshotParams

    def __init__(self, build: OpBuild):
        super().__init__(build)
        p: KnnFewshotParams = self.params
        path = Path(p.bank).expanduser()
        base = build.base_dir
        if base is None and build.file is not None and Path(build.file).is_file():
            base = Path(build.file).resolve().parent  # at check time only the recipe file is known
        if not path.is_absolute() and base is not None and (base / path).exists():
            path = base / path
        try:
            self.bank: list[BankExample] = load_bank(path)
        except ConfigError as exc:
            raise build.fail(str(exc), "params.bank") from None
        self.lexical = TfidfIndex([e.text for e in self.bank]) if p.embedding is None else None
        self._bank_vectors: list[list[float]] | None = None
        self._lock = asyncio.Lock()
        self._embedder_: Embedder | None = None

    def _embedder(self) -> Embedder:
        """The embedder, made on first use: through the run's client (its cache, retries, pool,
        accounting and trajectory); over a separate endpoint when ``base_url`` or ``api_key_env``
        is set, else over the run's endpoints serving the model."""
        if self._embedder_ is not None:
            return self._embedder_
        emb: EmbeddingParams = self.params.embedding
        client = self.build.client
        if client is None:
            raise self.build.fail("embedding similarity needs the run's LLM client", "params.embedding")
        if emb.base_url or emb.api_key_env:
            first = client.pool.endpoints[0].config
            endpoint = EndpointConfig(
                name=f"{self.node}-embeddings",
                base_url=emb.base_url or first.base_url,
                api_key_env=emb.api_key_env,
                timeout_s=first.timeout_s,
            )
            client = client.with_endpoints([endpoint])
        self._embedder_ = Embedder(self.node, emb.model, client, batch_size=emb.batch_size)
        return self._embedder_

    async def _scores(self, item: Item, ctx: AgentContext) -> list[float]:
        if self.lexical is not None:
            return self.lexical.scores(item_text(item))
        embedder = self._embedder()
        async with self._lock:  # the bank is embedded once, by the first item that needs it
            if self._bank_vectors is None:
                self._bank_vectors = await embedder.embed([e.text for e in self.bank], ctx)
        (query,) = await embedder.embed([item_text(item)], ctx)
        return [cosine(query, v) for v in self._bank_vectors]

    def nearest(self, item: Item, scores: list[float]) -> list[tuple[BankExample, float]]:
        own = item.question.strip().lower()
        allowed = [
            -1e9 if self.params.skip_same_question and e.question.strip().lower() == own else s
            for e, s in zip(self.bank, scores, strict=True)
        ]
        chosen = [i for i in top_k(allowed, self.params.k) if allowed[i] > -1e9]
        return [(self.bank[i], round(scores[i], 6)) for i in chosen]

    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        picked = await self._scores(item, ctx)
        neighbours = self.nearest(item, picked)
        fewshot = [e.model_dump() for e, _ in neighbours]
        method = "embedding" if self.params.embedding else "tfidf"
        meta = {
            "fewshot_ids": [e.id for e, _ in neighbours],
            "fewshot_scores": [s for _, s in neighbours],
            "fewshot_method": method,
        }
        updated = item.model_copy(update={"data": {**item.data, "fewshot": fewshot}})
        ids = ", ".join(e.id for e, _ in neighbours)
        note = Trace(
            id=f"{item.id}/{self.node}",
            item_id=item.id,
            node=self.node,
            text=f"{len(neighbours)} nearest bank examples ({method}): {ids}",
            meta=meta,
        )
        incoming = [t.model_copy(update={"meta": {**t.meta, **meta}}) for t in traces]
        return NodeOutput(traces=incoming or [note], item=updated)
