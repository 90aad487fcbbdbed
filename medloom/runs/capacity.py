"""Advice when a run keeps far fewer items in flight than its endpoints could serve."""

from __future__ import annotations

from medloom.graphs.spec import GraphSpec

ITEMS_PER_ENDPOINT = 8
"""What the advice suggests: a vLLM server batches dozens of requests, and an item makes one or a
few at a time."""


def concurrency_advice(spec: GraphSpec) -> str | None:
    """A warning when ``run.concurrency`` is below two items per endpoint (several endpoints only:
    one endpoint may be a rate-limited API), else None."""
    endpoints = len(spec.endpoints)
    concurrency = spec.run.concurrency
    if endpoints < 2 or concurrency >= 2 * endpoints:
        return None
    suggested = ITEMS_PER_ENDPOINT * endpoints
    return (
        f"run.concurrency={concurrency} keeps about {concurrency} item(s) in flight for {endpoints} "
        f"endpoints: most of them will idle. Raise it, e.g. --concurrency {suggested} "
        f"(--set run.concurrency={suggested}); each endpoint still takes at most its max_concurrency"
    )
