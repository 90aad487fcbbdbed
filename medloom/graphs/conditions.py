"""Edge conditions, parsed once into typed objects: always, passed, failed, score thresholds."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from medloom.core.records import Trace

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
_SCORE = re.compile(r"^score\s*(>=|>|<=|<|==)\s*(-?\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class Always:
    def holds(self, trace: Trace) -> bool:
        return True


@dataclass(frozen=True)
class Passed:
    def holds(self, trace: Trace) -> bool:
        verdict = trace.last_verdict
        return verdict is not None and verdict.passed


@dataclass(frozen=True)
class Failed:
    def holds(self, trace: Trace) -> bool:
        verdict = trace.last_verdict
        return verdict is not None and not verdict.passed


@dataclass(frozen=True)
class ScoreCompare:
    op: str
    value: float

    def holds(self, trace: Trace) -> bool:
        score = trace.score
        return score is not None and _OPS[self.op](score, self.value)


Condition = Always | Passed | Failed | ScoreCompare

_NAMED: dict[str, Condition] = {"always": Always(), "passed": Passed(), "failed": Failed()}


def parse_condition(text: str) -> Condition:
    """The condition ``text`` names; a ValueError saying what is allowed otherwise."""
    text = text.strip()
    if text in _NAMED:
        return _NAMED[text]
    m = _SCORE.match(text)
    if not m:
        raise ValueError(f"unknown condition '{text}'; use always, passed, failed or 'score >= 3'")
    return ScoreCompare(m.group(1), float(m.group(2)))


def matches(condition: str | Condition, trace: Trace) -> bool:
    """Whether ``condition`` (text or parsed) holds for ``trace``'s latest verdict."""
    parsed = parse_condition(condition) if isinstance(condition, str) else condition
    return parsed.holds(trace)
