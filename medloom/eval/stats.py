"""Confidence intervals for benchmark accuracy."""

from __future__ import annotations

import math
from statistics import NormalDist


def wilson_interval(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for ``correct`` successes out of ``total`` trials.

    Unlike the normal approximation it stays inside [0, 1] and is sensible for small samples
    and accuracies near 0 or 1. With no trials the interval is the whole range (0, 1).
    """
    if not 0 <= correct <= total:
        raise ValueError(f"correct must be between 0 and total, got {correct} of {total}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if total == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    # At 0 (or all) correct the bound is exactly 0 (or 1); rounding would leave e.g. 2.8e-17.
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == total else min(1.0, centre + half)
    return low, high
