"""Each built-in node kind owns its spec, checks and description; the engine only routes."""

from __future__ import annotations

from typing import Any

import pytest

from medloom.core.registry import REGISTRY
from medloom.nodes.kind import node_kind


@pytest.mark.parametrize(
    ("node", "described"),
    [
        ({"type": "generator", "model": "gen", "template": "mcq_cot"}, "models ['gen'], template `mcq_cot`"),
        (
            {"type": "refiner", "model": "gen", "max_rounds": 3},
            "models ['gen'], template `mcq_refine`, ≤3 rounds",
        ),
        ({"type": "selector", "method": "vote", "k": 2}, "vote, k=2"),
        ({"type": "step", "op": "summarise"}, "summarise"),
        (
            {
                "type": "verifier",
                "verifiers": [{"check": "format", "params": {"min_steps": 2}}, {"judge": "j"}],
            },
            'all of: check `format` {"min_steps": 2}; LLM judge `j` (template `mcq_judge`)',
        ),
    ],
)
def test_a_kind_describes_its_node_for_the_card(node: dict[str, Any], described: str) -> None:
    kind = node_kind(node["type"])
    assert kind.describe(kind.Spec.model_validate(node)) == described


def test_where_kinds_may_sit() -> None:
    kinds = REGISTRY.all("node")
    assert {t for t, k in kinds.items() if k.can_start} >= {"generator", "step"}
    assert {t for t, k in kinds.items() if k.bounds_loops} == {"refiner"}
    assert {t for t, k in kinds.items() if not k.in_loops} >= {"generator", "selector"}


def test_an_unknown_selector_method_lists_the_registered_ones() -> None:
    kind = node_kind("selector")
    with pytest.raises(
        ValueError, match=r"unknown method 'best' \(methods: all, first_passing, top_k, vote\)"
    ):
        kind.Spec.model_validate({"type": "selector", "method": "best"})
