"""``op: knn_fewshot`` — Medprompt's dynamic few-shot: the k bank examples nearest the question.

The chosen examples go to ``item.data["fewshot"]`` (prompt templates render them, e.g.
``medprompt_cot``) and their ids to the emitted trace's ``meta["fewshot_ids"]``. Similarity is
TF-IDF cosine over question and options by default (no model needed), or cosine of embeddings
from an OpenAI-compatible ``/v1/embeddings`` endpoint when ``params.embedding`` is set::

    fewshot:
      type: step
      op: knn_fewshot
      params:
        bank: data/medprompt_bank.jsonl      # relative to the recipe
        k: 5
        embedding: {model: text-embedding-3-small, base_url: "https://api.openai.com/v1",
                    api_key_env: OPENAI_API_KEY}   # optional; base_url defaults to the run's endpoint
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
from pydantic import Field

from medloom.agents.context import AgentContext
from medloom.core.errors import ConfigError
from medloom.core.records import Item, Trace
from medloom.llm.settings import EndpointConfig
from medloom.nodes.protocol import NodeOutput
from medloom.nodes.step import BaseOp, OpBuild, OpParams, register_op
from medloom.ops.knn_bank import BankExample, load_bank
from medloom.ops.knn_similarity import TfidfIndex, cosine, embed_texts, top_k


class EmbeddingParams(OpParams):
    model: str
    """The embedding model's served name."""
    base_url: str | None = None
    """An OpenAI-compatible base URL; default: the run's first endpoint."""
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

    def _embedding_endpoint(self) -> EndpointConfig:
        emb: EmbeddingParams = self.params.embedding
        if emb.base_url:
            return EndpointConfig(base_url=emb.base_url, api_key_env=emb.api_key_env)
        if self.build.client is None or not self.build.client.pool.endpoints:
            raise self.build.fail(
                "embedding similarity needs an endpoint: set params.embedding.base_url",
                "params.embedding.base_url",
            )
        endpoint = self.build.client.pool.endpoints[0].config
        if emb.api_key_env:
            endpoint = endpoint.model_copy(update={"api_key_env": emb.api_key_env})
        return endpoint

    async def _scores(self, item: Item) -> list[float]:
        if self.lexical is not None:
            return self.lexical.scores(item_text(item))
        emb: EmbeddingParams = self.params.embedding
        endpoint = self._embedding_endpoint()
        async with openai.AsyncOpenAI(
            base_url=endpoint.base_url, api_key=endpoint.api_key(), timeout=endpoint.timeout_s, max_retries=2
        ) as client:
            async with self._lock:  # the bank is embedded once, by the first item that needs it
                if self._bank_vectors is None:
                    texts = [e.text for e in self.bank]
                    self._bank_vectors = await embed_texts(client, emb.model, texts, emb.batch_size)
            (query,) = await embed_texts(client, emb.model, [item_text(item)])
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
        picked = await self._scores(item)
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
