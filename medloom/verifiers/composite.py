"""Combine verifiers: all must pass, any may pass, or a share must pass."""

from __future__ import annotations

from typing import Literal

from medloom.agents.context import AgentContext
from medloom.agents.roles import VerifierRole
from medloom.core.gather import gather_all
from medloom.core.records import Item, Trace, Verdict


class Composite:
    """A verifier made of verifiers; flags and reasons are merged, the score averaged."""

    def __init__(
        self,
        verifiers: list[VerifierRole],
        mode: Literal["all", "any", "threshold"] = "all",
        threshold: float = 0.5,
        name: str = "composite",
    ):
        if not verifiers:
            raise ValueError("a composite verifier needs at least one verifier")
        self.verifiers = verifiers
        self.mode = mode
        self.threshold = threshold
        self.name = name

    async def verify(self, item: Item, trace: Trace, ctx: AgentContext | None = None) -> Verdict:
        ctx = ctx or AgentContext(item_id=item.id)
        verdicts = await gather_all(v.verify(item, trace, ctx) for v in self.verifiers)
        passes = [v.passed for v in verdicts]
        if self.mode == "all":
            passed = all(passes)
        elif self.mode == "any":
            passed = any(passes)
        else:
            passed = sum(passes) / len(passes) >= self.threshold
        flags: dict[int, str] = {}
        for v in verdicts:
            for step, why in v.step_flags.items():
                flags[step] = f"{flags[step]}; {why}" if step in flags else why
        scores = [v.score for v in verdicts if v.score is not None]
        return Verdict(
            passed=passed,
            score=sum(scores) / len(scores) if scores else None,
            step_flags=flags,
            # A failing composite gives the failing parts' reasons only: they are what a refiner
            # must fix and what a rejection reports.
            reasons=[
                f"{v.verifier}: {'pass' if v.passed else 'fail'} ({v.reason})"
                for v in verdicts
                if passed or not v.passed
            ],
            verifier=self.name,
            node=ctx.node,
            failed_by=[v.verifier for v in verdicts if not v.passed],
        )
