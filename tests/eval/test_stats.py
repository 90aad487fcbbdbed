"""Wilson score intervals against published values."""

from __future__ import annotations

import pytest

from medloom.eval.stats import wilson_interval


@pytest.mark.parametrize(
    ("correct", "total", "low", "high"),
    [
        (8, 10, 0.4902, 0.9433),
        (5, 10, 0.2366, 0.7634),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),
    ],
)
def test_wilson_interval_matches_reference_values(correct: int, total: int, low: float, high: float) -> None:
    got_low, got_high = wilson_interval(correct, total)
    assert got_low == pytest.approx(low, abs=1e-4)
    assert got_high == pytest.approx(high, abs=1e-4)


def test_wilson_interval_narrows_with_more_items_and_widens_with_confidence() -> None:
    small = wilson_interval(3, 4)
    large = wilson_interval(300, 400)
    assert small[1] - small[0] > large[1] - large[0]
    assert large[0] < 0.75 < large[1]
    wide = wilson_interval(300, 400, confidence=0.99)
    assert wide[0] < large[0] and wide[1] > large[1]


def test_wilson_interval_edge_cases() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="between 0 and total"):
        wilson_interval(5, 4)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 4, confidence=1.5)


@pytest.mark.parametrize("total", [1, 3, 10, 20, 263])
def test_wilson_bounds_are_exact_at_none_and_all_correct(total: int) -> None:
    assert wilson_interval(0, total)[0] == 0.0  # not 2.8e-17 (issue 12)
    assert wilson_interval(total, total)[1] == 1.0
