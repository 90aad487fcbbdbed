"""Label checks that mean something: solver accuracy against chance, and well-posedness from the KG.

Two questions are kept apart:

- *is the item well posed?* The KG answers it exactly (the answer satisfies the chain and no
  distractor does: :func:`options_satisfying`), and an open-book solver given the path's facts
  must reach the answer more often than a guesser could (:func:`beats_chance`).
- *how hard is it?* A closed-book solver's accuracy tags difficulty; it is not a filter, and a
  solver no better than chance is reported as such instead of as a difficulty.
"""

from __future__ import annotations

from math import comb

from medloom.kg.model import KnowledgeGraph
from medloom.kg.paths import KGPath
from medloom.kg.samplers import satisfying_ends


def chance_tail(correct: int, samples: int, options: int) -> float:
    """P(a uniform guesser over ``options`` gets at least ``correct`` of ``samples`` right)."""
    p = 1 / max(options, 1)
    return sum(
        comb(samples, k) * p**k * (1 - p) ** (samples - k) for k in range(max(correct, 0), samples + 1)
    )


def needed_to_beat_chance(samples: int, options: int, alpha: float) -> int | None:
    """The fewest correct answers of ``samples`` a guesser reaches with probability ≤ ``alpha``
    (None: no count is enough, e.g. 2 samples at alpha 0.01 over 2 options)."""
    return next((k for k in range(samples + 1) if chance_tail(k, samples, options) <= alpha), None)


def beats_chance(correct: int, samples: int, options: int, alpha: float) -> bool:
    """A one-sided binomial test: ``correct`` of ``samples`` is unlikely (≤ alpha) for a guesser."""
    return samples > 0 and chance_tail(correct, samples, options) <= alpha


def options_satisfying(kg: KnowledgeGraph, path: KGPath, options: dict[str, str]) -> list[str]:
    """The option letters whose entity (of the answer's type, by name) the path's relations,
    walked from its start in its directions, reach: exactly the answer's letter for a well-posed item."""
    ends = satisfying_ends(kg, path)
    names = {kg.names[n].lower() for n in ends if kg.type_of(n) == path.end.type}
    return [letter for letter, text in options.items() if text.lower() in names]
