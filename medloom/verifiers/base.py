"""The verifier protocol and helpers shared by deterministic checks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from medloom.agents.agent import Agent
from medloom.agents.context import AgentContext
from medloom.core.records import Item, Trace, Verdict
from medloom.core.registry import REGISTRY
from medloom.kg.spec import KGResources

CheckResources = KGResources
"""The recipe's shared resources a check may use (``resources:``)."""


C = TypeVar("C", bound="type[Check]")


def register_check(name: str) -> Callable[[C], C]:
    """Class decorator: make ``name`` usable as ``check:`` in a verifier node (``cls.name`` should match)."""

    def wrap(cls: C) -> C:
        REGISTRY.add("check", name, cls)
        return cls

    return wrap


def registered_checks() -> dict[str, type[Check]]:
    """Every known check (built-in, registered, and from installed plugins)."""
    return REGISTRY.all("check")


class Check(ABC):
    """A deterministic verifier: a pure function of the item and the trace."""

    name: str = "check"

    @classmethod
    def from_params(cls, params: dict[str, Any], resources: CheckResources | None = None) -> Check:
        """Build from a recipe's ``params``; checks that need a resource (e.g. ``resources.kg``)
        override this."""
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


class ModelCheck(Check):
    """A check that asks a model (an LLM validator usable in any verifier node).

    The recipe names the model alias beside the check (``check: medval``, ``model: judge``,
    optionally ``template:`` and ``sampling:``); the verifier node builds the agent and binds it.
    Subclasses implement :meth:`verify`; the synchronous :meth:`check` is not available.
    """

    default_template: ClassVar[str] = ""
    """The prompt template used when the recipe names none."""
    template_variables: ClassVar[frozenset[str]] = frozenset()
    """The variables the check passes to its template besides the item's."""

    _agent: Agent | None = None

    def bind(self, agent: Agent) -> None:
        self._agent = agent

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            raise RuntimeError(
                f"check '{self.name}' asks a model: use it in a verifier node with `model: ALIAS`, "
                "or call bind(agent) first"
            )
        return self._agent

    def check(self, item: Item, trace: Trace) -> Verdict:
        raise TypeError(f"check '{self.name}' asks a model: await verify(item, trace) instead of check()")

    @abstractmethod
    async def verify(self, item: Item, trace: Trace, ctx: AgentContext | None = None) -> Verdict: ...
