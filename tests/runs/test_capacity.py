"""The warning when run.concurrency leaves most endpoints idle."""

from __future__ import annotations

from medloom.graphs.loader import load_spec
from medloom.runs.capacity import concurrency_advice
from tests.helpers import RECIPE


def _spec(endpoints: int, concurrency: int):  # type: ignore[no-untyped-def]
    urls = [f"http://127.0.0.1:{8000 + i}/v1" for i in range(endpoints)]
    overrides = [f"endpoints={[{'name': f'e{i}', 'base_url': u} for i, u in enumerate(urls)]}"]
    return load_spec(RECIPE, [*overrides, f"run.concurrency={concurrency}"])


def test_eight_replicas_at_recipe_concurrency_get_advice() -> None:
    advice = concurrency_advice(_spec(8, 4))
    assert advice is not None
    assert "run.concurrency=4" in advice and "8 endpoints" in advice and "--concurrency 64" in advice


def test_enough_items_in_flight_or_one_endpoint_get_none() -> None:
    assert concurrency_advice(_spec(8, 16)) is None
    assert concurrency_advice(_spec(1, 1)) is None  # one endpoint may be a rate-limited API
