"""Budget caps on what a run spends: the caps, the spend, and the ledger that counts it.

A run with caps (``run.budget`` in the config, ``--max-cost/--max-tokens/--max-calls``) charges the
ledger for every LLM call it pays for and asks it before each new item whether a cap is reached;
once one is, no new item starts, the items in flight finish, and the run ends "stopped" (resumable).

:class:`BudgetLedger` is the protocol; :class:`LocalBudgetLedger` counts in this process. A ledger
shared by several processes (one counter for all shards of a run) implements the same protocol:
``charge`` must return at once (a remote ledger sends the charge and does not wait), the queries are
awaited.
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from medloom.core.usage import UsageTally

CapName = Literal["max_cost", "max_tokens", "max_calls"]

CAP_FLAGS: dict[CapName, str] = {
    "max_cost": "--max-cost",
    "max_tokens": "--max-tokens",
    "max_calls": "--max-calls",
}
"""The command-line flag that sets each cap."""


class BudgetCaps(BaseModel):
    """Upper bounds on a run's paid spend, over all its sessions (None: no cap)."""

    model_config = ConfigDict(extra="forbid")

    max_cost: float | None = Field(default=None, gt=0)
    """Cost in the currency of ``llm.prices`` (needs a price for the run's models)."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Prompt plus completion tokens paid for."""
    max_calls: int | None = Field(default=None, ge=1)
    """LLM requests paid for (cache hits are free; a call that failed after its retries counts)."""

    @property
    def any(self) -> bool:
        """Whether any cap is set."""
        return any(getattr(self, name) is not None for name in CAP_FLAGS)


class Spend(BaseModel):
    """What calls cost against the caps: only what was paid for (cache hits count nothing)."""

    calls: int = 0
    tokens: int = 0
    cost: float = 0.0

    @classmethod
    def of(cls, tally: UsageTally) -> Spend:
        """The paid part of a usage tally: calls not served wholly from the cache, plus failed calls."""
        return cls(
            calls=tally.calls - tally.cached_calls + tally.failed_calls,
            tokens=tally.prompt_tokens + tally.completion_tokens,
            cost=tally.cost,
        )

    def __add__(self, other: Spend) -> Spend:
        return Spend(
            calls=self.calls + other.calls, tokens=self.tokens + other.tokens, cost=self.cost + other.cost
        )

    def amount(self, cap: CapName) -> float:
        """The figure that ``cap`` bounds."""
        return {"max_cost": self.cost, "max_tokens": self.tokens, "max_calls": self.calls}[cap]

    def describe(self) -> str:
        return f"{self.calls} calls, {self.tokens} tokens, cost {self.cost:.4g}"


class CapReached(BaseModel):
    """The cap that stopped a run, its limit, and the run's spend when it stopped."""

    cap: CapName
    limit: float
    spent: Spend

    def message(self) -> str:
        """One line for the user: which cap, the spend, and how to go on."""
        flag = CAP_FLAGS[self.cap]
        return (
            f"budget cap {self.cap}={self.limit:g} reached (spent {self.spent.describe()}): no new item "
            f"started; resume with a higher {flag} to go on"
        )


def first_cap_reached(caps: BudgetCaps, spent: Spend) -> CapReached | None:
    """The first cap (cost, tokens, calls) that ``spent`` has reached, or None."""
    for cap in CAP_FLAGS:
        limit = getattr(caps, cap)
        if limit is not None and spent.amount(cap) >= limit:
            return CapReached(cap=cap, limit=limit, spent=spent)
    return None


def remaining_of(caps: BudgetCaps, spent: Spend) -> dict[CapName, float]:
    """What is left under each cap that is set (0 when reached or passed)."""
    return {
        cap: max(0.0, limit - spent.amount(cap))
        for cap in CAP_FLAGS
        if (limit := getattr(caps, cap)) is not None
    }


class BudgetLedger(Protocol):
    """A counter of spend against caps, shared by everything that spends for one run."""

    @property
    def caps(self) -> BudgetCaps: ...

    def charge(self, spend: Spend) -> None:
        """Add ``spend``; returns at once (a remote ledger sends it without waiting)."""
        ...

    async def spent(self) -> Spend:
        """Everything charged so far (with the spend it started from)."""
        ...

    async def remaining(self) -> dict[CapName, float]:
        """What is left under each cap that is set."""
        ...

    async def exceeded(self) -> CapReached | None:
        """The cap reached (spend at or over its limit), or None while every cap has room."""
        ...


class LocalBudgetLedger:
    """A :class:`BudgetLedger` in this process; ``spent`` seeds it (a resumed run's earlier spend)."""

    def __init__(self, caps: BudgetCaps, spent: Spend | None = None):
        self._caps = caps
        self._spent = spent or Spend()

    @property
    def caps(self) -> BudgetCaps:
        return self._caps

    def charge(self, spend: Spend) -> None:
        self._spent = self._spent + spend

    async def spent(self) -> Spend:
        return self._spent

    async def remaining(self) -> dict[CapName, float]:
        return remaining_of(self._caps, self._spent)

    async def exceeded(self) -> CapReached | None:
        return first_cap_reached(self._caps, self._spent)
