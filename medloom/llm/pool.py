"""A pool of endpoints: sticky or least-outstanding routing, per-endpoint concurrency, ejection and
probes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass, field

from medloom.core.errors import EndpointsResting, NoEndpointAvailable
from medloom.llm.settings import EndpointConfig, HealthSettings, Routing


@dataclass(eq=False)
class EndpointState:
    """Live state of one endpoint."""

    config: EndpointConfig
    outstanding: int = 0
    consecutive_failures: int = 0
    ejected: bool = False
    down_until: float = 0.0
    probing: bool = False
    calls: int = 0
    failures: int = 0
    last_error: str | None = None
    discovered_models: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.config.label()

    def serves(self, model: str) -> bool:
        listed = self.config.models if self.config.models is not None else self.discovered_models
        return not listed or model in listed


def affinity_rank(affinity: str, endpoint: str) -> int:
    """The weight of ``endpoint`` for the calls keyed ``affinity`` (rendezvous hashing): the same in
    every process and run, and independent of the other endpoints, so removing one endpoint moves
    only the keys whose first choice it was."""
    digest = hashlib.blake2b(f"{affinity}\0{endpoint}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class EndpointPool:
    """Chooses an endpoint for each call and tracks which endpoints are healthy.

    ``routing="sticky"``: a call with an ``affinity`` key (the item id) goes to the key's home
    endpoint, the in-rotation endpoint of highest :func:`affinity_rank`, unless the home has no
    free slot or more than ``sticky_slack`` calls in flight beyond the least busy endpoint; then,
    like every call without a key and every call under ``routing="least_outstanding"``, to the
    endpoint with the fewest calls in flight. A probe due on an endpoint out of rotation goes first.
    """

    def __init__(
        self,
        endpoints: list[EndpointConfig],
        health: HealthSettings | None = None,
        *,
        routing: Routing = "sticky",
        sticky_slack: int = 4,
    ):
        if not endpoints:
            raise NoEndpointAvailable("no endpoints configured")
        self.health = health or HealthSettings()
        self.endpoints = [EndpointState(e) for e in endpoints]
        self.routing: Routing = routing
        self.sticky_slack = sticky_slack
        self._cond = asyncio.Condition()

    def candidates(self, model: str, only: list[str] | None = None) -> list[EndpointState]:
        chosen = [e for e in self.endpoints if e.serves(model) and (only is None or e.name in only)]
        if not chosen:
            names = ", ".join(e.name for e in self.endpoints)
            raise NoEndpointAvailable(
                f"no endpoint serves model '{model}'"
                + (f" among {only}" if only else "")
                + f" (endpoints: {names}); add the model to an endpoint's 'models' list"
            )
        return chosen

    def home(self, candidates: list[EndpointState], affinity: str) -> EndpointState | None:
        """The in-rotation endpoint among ``candidates`` that calls keyed ``affinity`` stick to."""
        in_rotation = [ep for ep in candidates if not ep.ejected]
        return max(in_rotation, key=lambda ep: affinity_rank(affinity, ep.name), default=None)

    def _choose(
        self, candidates: list[EndpointState], affinity: str | None, now: float
    ) -> EndpointState | None:
        """The endpoint for the next call, or None when none can take one now."""
        free = [
            ep
            for ep in candidates
            if ep.outstanding < ep.config.max_concurrency
            and not (ep.ejected and (ep.down_until > now or ep.probing))
        ]
        if not free:
            return None
        least = min(free, key=lambda ep: ep.outstanding)  # the first of equals: pool order
        if self.routing != "sticky" or affinity is None:
            return least
        probe = next((ep for ep in free if ep.ejected), None)
        if probe is not None:  # an endpoint out of rotation is due for its probe: send it now
            return probe
        home = self.home(candidates, affinity)
        if home in free and home.outstanding <= least.outstanding + self.sticky_slack:
            return home
        return least

    async def acquire(
        self, model: str, only: list[str] | None = None, affinity: str | None = None
    ) -> EndpointState:
        """Wait for a healthy endpoint with spare capacity, chosen by the pool's routing
        (``affinity``: the key calls stick by, e.g. the item id).

        When every endpoint is out of rotation and none is due for a probe, raises
        EndpointsResting (retryable) instead of queueing behind the single probe."""
        candidates = self.candidates(model, only)
        async with self._cond:
            while True:
                now = time.monotonic()
                best = self._choose(candidates, affinity, now)
                if best is not None:
                    best.outstanding += 1
                    best.calls += 1
                    if best.ejected:
                        best.probing = True
                    return best
                if all(ep.ejected for ep in candidates):
                    last = next((ep.last_error for ep in candidates if ep.last_error), None)
                    # Retry when the next probe is due (or a probe in flight has had time to
                    # finish), rather than spend every attempt before any probe could succeed.
                    due = [ep.down_until - now for ep in candidates if not ep.probing]
                    raise EndpointsResting(
                        f"every endpoint serving '{model}' is out of rotation after repeated "
                        f"failures (last: {last or 'unknown'})",
                        retry_after=max(0.0, min(due)) + 0.01 if due else self.health.probe_after_s,
                    )
                resting = [ep.down_until - now for ep in candidates if ep.ejected]
                timeout = max(0.01, min(resting)) if resting else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._cond.wait(), timeout)

    async def release(
        self, ep: EndpointState, *, healthy: bool | None, probe: bool = False, error: str | None = None
    ) -> None:
        """Return a slot. ``healthy``: True (success), False (endpoint fault), None (neither);
        ``probe``: this call was the one probe let through to an endpoint out of rotation."""
        async with self._cond:
            ep.outstanding -= 1
            if healthy is True:
                ep.consecutive_failures = 0
                ep.ejected = False
                ep.probing = False
            elif healthy is False:
                ep.last_error = error
                ep.failures += 1
                ep.consecutive_failures += 1
                if probe or ep.consecutive_failures >= self.health.failures_to_eject:
                    ep.ejected = True
                    ep.down_until = time.monotonic() + self.health.probe_after_s
            if probe:
                ep.probing = False
            self._cond.notify_all()

    def snapshot(self) -> list[dict[str, object]]:
        return [
            {
                "endpoint": e.name,
                "outstanding": e.outstanding,
                "calls": e.calls,
                "failures": e.failures,
                "in_rotation": not e.ejected,
            }
            for e in self.endpoints
        ]


class SharedPools:
    """One :class:`EndpointPool` per distinct endpoint list, handed to every client asking for the
    same list: clients of several runs in one process (``medloom eval``'s solvers) then share the
    routing and each endpoint's ``max_concurrency`` instead of each taking the full allowance."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, ...], EndpointPool] = {}

    def get(
        self,
        endpoints: list[EndpointConfig],
        health: HealthSettings | None = None,
        *,
        routing: Routing = "sticky",
        sticky_slack: int = 4,
    ) -> EndpointPool:
        """The pool over ``endpoints`` (made by the first caller, with its health and routing
        settings)."""
        key = tuple(e.model_dump_json() for e in endpoints)
        pool = self._pools.get(key)
        if pool is None:
            pool = EndpointPool(endpoints, health, routing=routing, sticky_slack=sticky_slack)
            self._pools[key] = pool
        return pool
