"""The verifier protocol and helpers shared by deterministic checks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from medloom.agents.context import AgentContext
from medloom.core.records import Item, Trace, Verdict

if TYPE_CHECKING:
    from medloom.graphs.spec import GraphSpec


class Check(ABC):
    """A deterministic verifier: a pure function of the item and the trace."""

    name: str = "check"

    @classmethod
    def from_params(cls, params: dict[str, Any], graph: GraphSpec | None = None) -> Check:
        """Build from a recipe's ``params``; checks that need the recipe (e.g. its ``kg:``) override this."""
        return cls(**params)

    @abstractmethod
    def check(self, item: Item, trace: Trace) -> Verdict: ...

    async def verify(self, item: Item, trace: Trace, ctx: AgentContext | None = None) -> Verdict:
        verdict = self.check(item, trace)
        return verdict.model_copy(update={"node": ctx.node}) if ctx and ctx.node else verdict

    def verdict(
        self,
        passed: bool,
        reasons: list[str] | None = None,
        *,
        score: float | None = None,
        step_flags: dict[int, str] | None = None,
    ) -> Verdict:
        return Verdict(
            passed=passed,
            score=score if score is not None else (1.0 if passed else 0.0),
            reasons=reasons or [],
            step_flags=step_flags or {},
            verifier=self.name,
        )
