"""Budget caps: what counts as spend, when a cap is reached, what remains."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from medloom.core.budget import BudgetCaps, CapReached, LocalBudgetLedger, Spend, first_cap_reached
from medloom.core.calls import Choice, LLMResponse, Usage
from medloom.core.usage import Price, UsageTally


def response(prompt: int, completion: int, cached: list[bool]) -> LLMResponse:
    choices = [Choice(index=i, text="x", cache_hit=hit) for i, hit in enumerate(cached)]
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
    return LLMResponse(model="m", choices=choices, usage=usage)


def test_spend_counts_only_what_was_paid() -> None:
    tally = UsageTally()
    price = Price(prompt=1.0, completion=3.0)
    tally.add(response(100, 10, [False, True]), price)  # partly cached: a paid call
    tally.add(response(0, 0, [True, True]), price)  # wholly cached: free
    tally.add(None)  # failed after its retries: the endpoint was called
    spend = Spend.of(tally)
    assert (spend.calls, spend.tokens) == (2, 110)
    assert spend.cost == pytest.approx((100 * 1.0 + 10 * 3.0) / 1e6)


async def test_a_cap_is_reached_at_its_limit_and_names_itself() -> None:
    ledger = LocalBudgetLedger(BudgetCaps(max_calls=3, max_tokens=1000))
    ledger.charge(Spend(calls=2, tokens=100))
    assert await ledger.exceeded() is None
    assert await ledger.remaining() == {"max_tokens": 900, "max_calls": 1}
    ledger.charge(Spend(calls=1, tokens=50))
    reached = await ledger.exceeded()
    assert reached == CapReached(cap="max_calls", limit=3, spent=Spend(calls=3, tokens=150))
    assert "max_calls=3" in reached.message() and "--max-calls" in reached.message()
    assert await ledger.remaining() == {"max_tokens": 850, "max_calls": 0}


async def test_a_ledger_seeded_with_earlier_spend_counts_on_from_it() -> None:
    ledger = LocalBudgetLedger(BudgetCaps(max_cost=1.0), Spend(calls=5, cost=0.75))
    ledger.charge(Spend(calls=1, cost=0.25))
    assert await ledger.spent() == Spend(calls=6, cost=1.0)
    reached = await ledger.exceeded()
    assert reached is not None and reached.cap == "max_cost"


def test_cost_is_checked_first_and_no_caps_never_stop() -> None:
    spent = Spend(calls=10, tokens=10, cost=10.0)
    everything = BudgetCaps(max_cost=1.0, max_tokens=1, max_calls=1)
    reached = first_cap_reached(everything, spent)
    assert reached is not None and reached.cap == "max_cost"
    assert first_cap_reached(BudgetCaps(), spent) is None
    assert not BudgetCaps().any and everything.any


@pytest.mark.parametrize("caps", [{"max_cost": 0}, {"max_tokens": -1}, {"max_calls": 0}, {"max_usd": 1}])
def test_caps_must_be_positive_and_known(caps: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        BudgetCaps.model_validate(caps)
