"""Edge conditions on a trace's latest verdict: always, passed, failed, score thresholds."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable

from medloom.core.records import Trace

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
_SCORE = re.compile(r"^score\s*(>=|>|<=|<|==)\s*(-?\d+(?:\.\d+)?)$")


def matches(condition: str, trace: Trace) -> bool:
    verdict = trace.last_verdict
    if condition == "always":
        return True
    if condition == "passed":
        return verdict is not None and verdict.passed
    if condition == "failed":
        return verdict is not None and not verdict.passed
    m = _SCORE.match(condition)
    if not m:
        raise ValueError(f"unknown edge condition '{condition}'")
    score = trace.score
    return score is not None and _OPS[m.group(1)](score, float(m.group(2)))
