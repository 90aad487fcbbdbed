"""The client's running token and cost totals by model (``medloom.core.usage.UsageTally``), and the
run's budget ledger charged with what each call paid (``medloom.core.budget``)."""

from __future__ import annotations

from collections import defaultdict

from medloom.core.budget import BudgetLedger, Spend
from medloom.core.calls import EmbeddingResponse, LLMResponse
from medloom.core.usage import Price, UsageTally


class TokenLedger:
    """Running totals by model name; every call is also charged to ``budget`` when one is set."""

    def __init__(self, prices: dict[str, Price] | None = None, budget: BudgetLedger | None = None):
        self.prices = prices or {}
        self.by_model: dict[str, UsageTally] = defaultdict(UsageTally)
        self.budget = budget

    def record(self, response: LLMResponse) -> None:
        self._count(response.model, response)

    def record_embedding(self, response: EmbeddingResponse) -> None:
        self._count(response.model, response)

    def record_failure(self, model: str) -> None:
        self._count(model, None)

    def _count(self, model: str, response: LLMResponse | EmbeddingResponse | None) -> None:
        one = UsageTally()
        one.add(response, self.prices.get(model))
        self.by_model[model].merge(one)
        if self.budget is not None:
            self.budget.charge(Spend.of(one))

    @property
    def completion_tokens(self) -> int:
        return sum(t.completion_tokens for t in self.by_model.values())

    @property
    def prompt_tokens(self) -> int:
        return sum(t.prompt_tokens for t in self.by_model.values())

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.by_model.values())
