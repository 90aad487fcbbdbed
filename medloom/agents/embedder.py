"""An embedder: a named caller of ``client.embed`` that reports every call to the context, as an
agent reports its LLM calls (cached, accounted, in the trajectory)."""

from __future__ import annotations

from collections.abc import Sequence

from medloom.agents.context import AgentContext
from medloom.core.calls import EmbeddingResponse
from medloom.core.errors import LLMError
from medloom.core.events import EmbeddingCall
from medloom.llm.client import LLMClient


class Embedder:
    """Embeds texts with ``model`` through ``client`` on behalf of ``name`` (a node or op)."""

    def __init__(self, name: str, model: str, client: LLMClient, *, batch_size: int = 64):
        self.name = name
        self.model = model
        self.client = client
        self.batch_size = batch_size

    async def embed(self, texts: Sequence[str], ctx: AgentContext | None = None) -> list[list[float]]:
        """The vectors of ``texts`` in order; the call goes to ``ctx`` as an ``EmbeddingCall``."""
        ctx = ctx or AgentContext()
        tags = ctx.tags(self.name)
        try:
            response = await self.client.embed(texts, self.model, tags=tags, batch_size=self.batch_size)
        except LLMError as err:
            ctx.send(self._event(ctx, texts, None, str(err)))
            raise
        ctx.send(self._event(ctx, texts, response, None))
        return response.vectors

    def _event(
        self, ctx: AgentContext, texts: Sequence[str], response: EmbeddingResponse | None, error: str | None
    ) -> EmbeddingCall:
        return EmbeddingCall(
            item_id=ctx.item_id,
            attempt=ctx.attempt,
            node=ctx.node,
            agent=self.name,
            model=self.model,
            texts=list(texts),
            response=response,
            error=error,
        )
