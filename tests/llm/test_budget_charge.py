"""The client charges the run's budget ledger with what each call paid: cache hits are free."""

from __future__ import annotations

import pytest

from medloom.core.budget import BudgetCaps, LocalBudgetLedger
from medloom.llm import LLMRequest, Price, RequestCache
from tests.llm._support import fast_settings
from tests.llm.conftest import ClientFactory, ServerFactory

MODEL = "fake-model"


async def test_fresh_calls_are_charged_and_cache_hits_are_not(
    make_server: ServerFactory, make_client: ClientFactory, cache: RequestCache
) -> None:
    srv = make_server(lambda req: "two words")
    price = Price(prompt=2.0, completion=10.0)
    client = make_client(srv, settings=fast_settings(prices={MODEL: price}), cache=cache)
    ledger = LocalBudgetLedger(BudgetCaps(max_calls=100))
    client.ledger.budget = ledger

    first = await client.generate(LLMRequest(model=MODEL, prompt="a b c"))
    again = await client.generate(LLMRequest(model=MODEL, prompt="a b c"))
    assert again.cache_hit and not first.cache_hit

    spent = await ledger.spent()
    assert spent.calls == 1 == srv.request_count
    assert spent.tokens == first.usage.total_tokens > 0
    assert spent.cost == pytest.approx(
        (first.usage.prompt_tokens * 2.0 + first.usage.completion_tokens * 10.0) / 1e6
    )
