"""The one usage tally: what a call adds, what merging adds, and NodeStats built on it."""

from __future__ import annotations

import pytest

from medloom.core.calls import Choice, LLMResponse, Usage
from medloom.core.events import NodeStats
from medloom.core.usage import Price, UsageTally, cost_of


def response(prompt: int, completion: int, cached: list[bool]) -> LLMResponse:
    choices = [Choice(index=i, text="x", cache_hit=hit) for i, hit in enumerate(cached)]
    return LLMResponse(
        model="m", choices=choices, usage=Usage(prompt_tokens=prompt, completion_tokens=completion)
    )


def test_add_counts_calls_samples_tokens_cost_and_failures() -> None:
    tally = UsageTally()
    price = Price(prompt=1.0, completion=2.0)
    tally.add(response(100, 10, [False, True]), price)
    tally.add(response(0, 0, [True]), price)
    tally.add(None)
    assert (tally.calls, tally.cached_calls, tally.failed_calls) == (2, 1, 1)
    assert (tally.samples, tally.cached_samples) == (3, 2)
    assert (tally.prompt_tokens, tally.completion_tokens) == (100, 10)
    assert tally.cost == pytest.approx((100 * 1.0 + 10 * 2.0) / 1e6)


def test_cost_of_without_a_price_is_zero() -> None:
    assert cost_of(Usage(prompt_tokens=10**6, completion_tokens=10**6), None) == 0.0
    assert cost_of(Usage(prompt_tokens=10**6), Price(prompt=0.5)) == pytest.approx(0.5)


def test_node_stats_merge_sums_usage_traces_and_rounds() -> None:
    a = NodeStats(traces_in=2, passed=1, rounds={"0": {"passed": 1}})
    a.add(response(5, 1, [False]))
    b = NodeStats(traces_in=3, failed=2, rounds={"0": {"failed": 2}, "1": {"passed": 1}})
    b.add(None)
    a.merge(b)
    assert (a.traces_in, a.passed, a.failed, a.calls, a.failed_calls, a.prompt_tokens) == (5, 1, 2, 1, 1, 5)
    assert a.rounds == {"0": {"passed": 1, "failed": 2}, "1": {"passed": 1}}
    plain = UsageTally()
    plain.merge(a)  # a node's stats count towards any tally
    assert (plain.calls, plain.failed_calls) == (1, 1)
