"""The client's running token and cost totals by model (``medloom.core.usage.UsageTally``)."""

from __future__ import annotations

from collections import defaultdict

from medloom.core.calls import EmbeddingResponse, LLMResponse
from medloom.core.usage import Price, UsageTally


class TokenLedger:
    """Running totals by model name."""

    def __init__(self, prices: dict[str, Price] | None = None):
        self.prices = prices or {}
        self.by_model: dict[str, UsageTally] = defaultdict(UsageTally)

    def record(self, response: LLMResponse) -> None:
        self.by_model[response.model].add(response, self.prices.get(response.model))

    def record_embedding(self, response: EmbeddingResponse) -> None:
        self.by_model[response.model].add(response, self.prices.get(response.model))

    def record_failure(self, model: str) -> None:
        self.by_model[model].add(None)

    @property
    def completion_tokens(self) -> int:
        return sum(t.completion_tokens for t in self.by_model.values())

    @property
    def prompt_tokens(self) -> int:
        return sum(t.prompt_tokens for t in self.by_model.values())

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.by_model.values())
