"""Significance of an accuracy change on the same items: an exact paired permutation test.

Each item has a correctness before and after (the attack). Under the null hypothesis the two
labels of a pair are exchangeable, so a permutation swaps them or not, each with probability
1/2. Pairs that agree do not move the statistic (correct before − correct after); each of the
``m`` discordant pairs adds +1 or −1. Enumerating all 2^m swaps is the binomial distribution
Bin(m, 1/2), so the test is exact without sampling and equals the exact McNemar test.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

from pydantic import BaseModel


class PairedTest(BaseModel):
    test: str = "exact paired permutation test (= exact McNemar)"
    worse: int
    """Pairs correct before and wrong after (b)."""
    better: int
    """Pairs wrong before and correct after (c)."""
    p_one_sided: float
    """P(a drop at least this large) under exchangeability: H1 = accuracy fell."""
    p_two_sided: float


def paired_permutation_test(before: Sequence[bool], after: Sequence[bool]) -> PairedTest:
    """Exact p-values for the drop in accuracy from ``before`` to ``after`` (same items, same order)."""
    if len(before) != len(after):
        raise ValueError(f"before has {len(before)} items, after {len(after)}: pair them item by item")
    worse = sum(b and not a for b, a in zip(before, after, strict=True))
    better = sum(a and not b for b, a in zip(before, after, strict=True))
    m = worse + better
    total = 2**m
    observed = worse - better
    # Statistic of a permutation with k pairs counted as "worse": k - (m - k) = 2k - m.
    one = sum(comb(m, k) for k in range(m + 1) if 2 * k - m >= observed) / total
    two = sum(comb(m, k) for k in range(m + 1) if abs(2 * k - m) >= abs(observed)) / total
    return PairedTest(worse=worse, better=better, p_one_sided=one, p_two_sided=two)
