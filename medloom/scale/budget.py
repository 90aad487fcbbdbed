"""Budget caps across shards: one counter actor for the whole run, and the ledger each shard's
client and engine use (:class:`~medloom.core.budget.BudgetLedger`)."""

from __future__ import annotations

from typing import Any

from medloom.core.budget import BudgetCaps, CapName, CapReached, Spend, first_cap_reached, remaining_of


class BudgetCounter:
    """The run's spend against its caps (a Ray actor: ``ray.remote(BudgetCounter)``), seeded with
    what the shards' earlier sessions paid."""

    def __init__(self, caps: BudgetCaps, spent: Spend | None = None):
        self.caps = caps
        self.total = spent or Spend()

    def charge(self, spend: Spend) -> None:
        self.total = self.total + spend

    def spent(self) -> Spend:
        return self.total

    def remaining(self) -> dict[CapName, float]:
        return remaining_of(self.caps, self.total)

    def exceeded(self) -> CapReached | None:
        return first_cap_reached(self.caps, self.total)


class RayBudgetLedger:
    """A :class:`~medloom.core.budget.BudgetLedger` over a :class:`BudgetCounter` actor: charges are
    sent without waiting, queries ask the actor (so every shard sees the others' spend)."""

    def __init__(self, counter: Any, caps: BudgetCaps):
        self.counter = counter
        self._caps = caps

    @property
    def caps(self) -> BudgetCaps:
        return self._caps

    def charge(self, spend: Spend) -> None:
        self.counter.charge.remote(spend)

    async def spent(self) -> Spend:
        result: Spend = await self.counter.spent.remote()
        return result

    async def remaining(self) -> dict[CapName, float]:
        result: dict[CapName, float] = await self.counter.remaining.remote()
        return result

    async def exceeded(self) -> CapReached | None:
        result: CapReached | None = await self.counter.exceeded.remote()
        return result
