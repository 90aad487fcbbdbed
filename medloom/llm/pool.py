"""A pool of endpoints: least-outstanding routing, per-endpoint concurrency, ejection and probes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from medloom.core.errors import EndpointsResting, NoEndpointAvailable
from medloom.llm.settings import EndpointConfig, HealthSettings


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


class EndpointPool:
    """Chooses an endpoint for each call and tracks which endpoints are healthy."""

    def __init__(self, endpoints: list[EndpointConfig], health: HealthSettings | None = None):
        if not endpoints:
            raise NoEndpointAvailable("no endpoints configured")
        self.health = health or HealthSettings()
        self.endpoints = [EndpointState(e) for e in endpoints]
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

    async def acquire(self, model: str, only: list[str] | None = None) -> EndpointState:
        """Wait for a healthy endpoint with spare capacity, least outstanding first.

        When every endpoint is out of rotation and none is due for a probe, raises
        EndpointsResting (retryable) instead of queueing behind the single probe."""
        candidates = self.candidates(model, only)
        async with self._cond:
            while True:
                now = time.monotonic()
                best: EndpointState | None = None
                for ep in candidates:
                    if ep.outstanding >= ep.config.max_concurrency:
                        continue
                    if ep.ejected and (ep.down_until > now or ep.probing):
                        continue
                    if best is None or ep.outstanding < best.outstanding:
                        best = ep
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

    def get(self, endpoints: list[EndpointConfig], health: HealthSettings | None = None) -> EndpointPool:
        """The pool over ``endpoints`` (made by the first caller, with its ``health`` settings)."""
        key = tuple(e.model_dump_json() for e in endpoints)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = EndpointPool(endpoints, health)
        return pool
