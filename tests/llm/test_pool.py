"""Routing over several endpoints: spreading, concurrency caps, least-outstanding, ejection and probes."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from medloom.core.errors import EndpointsResting, NoEndpointAvailable
from medloom.llm import LLMClient, LLMRequest, LLMResponse
from medloom.llm.pool import EndpointPool
from medloom.llm.settings import EndpointConfig, HealthSettings
from medloom.testing.fake import FakeRequest, Reply
from tests.llm._support import endpoint, fast_settings
from tests.llm.conftest import ClientFactory, ServerFactory

MODEL = "fake-model"


class InFlight:
    """A responder that holds each request for ``delay_s`` and tracks the peak in flight.

    It runs on its server's own event loop, so plain counters are safe.
    """

    def __init__(self, delay_s: float, text: str = "ok") -> None:
        self.delay_s = delay_s
        self.text = text
        self.current = 0
        self.peak = 0

    async def __call__(self, req: FakeRequest) -> str:
        self.current += 1
        self.peak = max(self.peak, self.current)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.current -= 1
        return self.text


def request(i: int) -> LLMRequest:
    return LLMRequest(model=MODEL, prompt=f"question {i}")


async def run_workers(client: LLMClient, total: int, workers: int) -> list[LLMResponse]:
    """``total`` distinct requests issued by ``workers`` sequential workers."""
    queue = list(range(total))
    results: list[LLMResponse] = []

    async def worker() -> None:
        while queue:
            results.append(await client.generate(request(queue.pop())))

    await asyncio.gather(*(worker() for _ in range(workers)))
    return results


def snapshot_of(client: LLMClient, name: str) -> dict[str, object]:
    (snap,) = [s for s in client.pool.snapshot() if s["endpoint"] == name]
    return snap


async def test_concurrent_requests_spread_over_both_endpoints(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    a = make_server(InFlight(0.02, "from a"))
    b = make_server(InFlight(0.02, "from b"))
    client = make_client([endpoint(a, name="a"), endpoint(b, name="b")])

    responses = await asyncio.gather(*(client.generate(request(i)) for i in range(40)))

    assert a.request_count + b.request_count == 40
    assert a.request_count > 0 and b.request_count > 0
    # Least-outstanding over identical endpoints balances them.
    assert abs(a.request_count - b.request_count) <= 4
    by_endpoint = Counter(r.endpoint for r in responses)
    assert by_endpoint == {"a": a.request_count, "b": b.request_count}
    assert all(r.text == f"from {r.endpoint}" for r in responses)
    assert all(s["outstanding"] == 0 for s in client.pool.snapshot())
    assert {s["endpoint"]: s["calls"] for s in client.pool.snapshot()} == by_endpoint


async def test_max_concurrency_per_endpoint_is_never_exceeded(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    tracker_a, tracker_b = InFlight(0.03), InFlight(0.03)
    a, b = make_server(tracker_a), make_server(tracker_b)
    client = make_client([endpoint(a, name="a", max_concurrency=2), endpoint(b, name="b", max_concurrency=2)])

    started = time.monotonic()
    responses = await asyncio.gather(*(client.generate(request(i)) for i in range(40)))
    elapsed = time.monotonic() - started

    assert len(responses) == 40
    assert tracker_a.peak == 2  # the cap was reached (the test would see 20 without it) ...
    assert tracker_b.peak == 2  # ... and never exceeded
    assert a.request_count + b.request_count == 40
    # 40 requests, 4 at a time, 30 ms each: at least 10 rounds.
    assert elapsed >= 10 * 0.03 * 0.9


async def test_max_concurrency_bounds_a_single_endpoint(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    tracker = InFlight(0.02)
    srv = make_server(tracker)
    client = make_client(endpoint(srv, max_concurrency=3))

    await asyncio.gather(*(client.generate(request(i)) for i in range(15)))

    assert tracker.peak == 3
    assert srv.request_count == 15


async def test_least_outstanding_sends_fewer_requests_to_slow_endpoint(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    slow = make_server(InFlight(0.3, "slow"))
    fast = make_server(InFlight(0.005, "fast"))
    # The slow endpoint is listed first, so ties go to it.
    client = make_client([endpoint(slow, name="slow"), endpoint(fast, name="fast")])

    responses = await run_workers(client, total=40, workers=4)

    assert len(responses) == 40
    assert slow.request_count + fast.request_count == 40
    assert slow.request_count >= 1
    assert slow.request_count * 2 < fast.request_count  # round-robin would give 20 each


async def test_endpoint_down_is_ejected_and_probed_back(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    a = make_server(InFlight(0.01, "from a"))
    b = make_server(InFlight(0.01, "from b"))
    client = make_client([endpoint(a, name="a"), endpoint(b, name="b")])

    before = await run_workers(client, total=20, workers=4)
    assert len(before) == 20
    assert a.request_count > 0 and b.request_count > 0

    await asyncio.to_thread(a.set_down, True, "refuse")
    a_seen = a.request_count
    during = await run_workers(client, total=40, workers=4)

    # Every request still succeeded, through b.
    assert len(during) == 40
    assert all(r.endpoint == "b" and r.text == "from b" for r in during)
    assert a.request_count == a_seen
    assert any("connection error from a" in e for r in during for e in r.errors)
    assert client.ledger.by_model[MODEL].failed_calls == 0
    snap_a = snapshot_of(client, "a")
    assert snap_a["in_rotation"] is False
    assert isinstance(snap_a["failures"], int) and snap_a["failures"] >= 3
    assert snapshot_of(client, "b")["in_rotation"] is True

    await asyncio.to_thread(a.set_down, False)
    await asyncio.sleep(0.25)  # longer than probe_after_s
    after = await run_workers(client, total=30, workers=4)

    assert len(after) == 30
    assert a.request_count > a_seen
    assert any(r.endpoint == "a" for r in after)
    assert snapshot_of(client, "a")["in_rotation"] is True


async def test_503_endpoint_is_ejected_after_consecutive_failures(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    bad = make_server(lambda req: Reply.error(503))
    good = make_server(lambda req: "good")
    no_probes = fast_settings(health=HealthSettings(failures_to_eject=3, probe_after_s=60))
    client = make_client([endpoint(bad, name="bad"), endpoint(good, name="good")], settings=no_probes)

    responses = [await client.generate(request(i)) for i in range(10)]

    assert all(r.text == "good" for r in responses)
    # Exactly failures_to_eject (3) hits before ejection; no probe within the 60 s rest.
    assert bad.request_count == 3
    assert snapshot_of(client, "bad")["in_rotation"] is False
    assert snapshot_of(client, "bad")["failures"] == 3


async def test_requests_pinned_to_an_endpoint(make_server: ServerFactory, make_client: ClientFactory) -> None:
    a = make_server(lambda req: "a")
    b = make_server(lambda req: "b")
    client = make_client([endpoint(a, name="a"), endpoint(b, name="b")])

    responses = await asyncio.gather(*(client.generate(request(i), endpoints=["b"]) for i in range(6)))

    assert {r.endpoint for r in responses} == {"b"}
    assert a.request_count == 0
    assert b.request_count == 6


async def test_model_routing_by_configured_models(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    a = make_server(lambda req: "a")
    b = make_server(lambda req: "b")
    client = make_client([endpoint(a, name="a", models=["m-a"]), endpoint(b, name="b", models=["m-b"])])

    ra = await asyncio.gather(*(client.generate(LLMRequest(model="m-a", prompt=str(i))) for i in range(4)))
    rb = await client.generate(LLMRequest(model="m-b", prompt="x"))

    assert {r.endpoint for r in ra} == {"a"}
    assert rb.endpoint == "b"
    assert (a.request_count, b.request_count) == (4, 1)
    with pytest.raises(NoEndpointAvailable, match="m-c"):
        await client.generate(LLMRequest(model="m-c", prompt="x"))


# -- the pool on its own -----------------------------------------------------------------------------------


def configs(*names: str, **kwargs: object) -> list[EndpointConfig]:
    return [EndpointConfig(name=n, base_url=f"http://{n}.invalid/v1", **kwargs) for n in names]  # type: ignore[arg-type]


def test_pool_needs_endpoints() -> None:
    with pytest.raises(NoEndpointAvailable):
        EndpointPool([])


async def test_pool_picks_least_outstanding() -> None:
    pool = EndpointPool(configs("x", "y"))

    first = await pool.acquire(MODEL)
    second = await pool.acquire(MODEL)
    third = await pool.acquire(MODEL)

    assert (first.name, second.name, third.name) == ("x", "y", "x")
    await pool.release(first, healthy=True)
    await pool.release(third, healthy=True)
    fourth = await pool.acquire(MODEL)
    assert fourth.name == "x"  # x now has 0 outstanding, y has 1


async def test_pool_waits_for_a_free_slot() -> None:
    pool = EndpointPool(configs("x", max_concurrency=1))
    held = await pool.acquire(MODEL)

    waiter = asyncio.create_task(pool.acquire(MODEL))
    await asyncio.sleep(0.05)
    assert not waiter.done()

    await pool.release(held, healthy=True)
    got = await asyncio.wait_for(waiter, 1.0)
    assert got is held
    assert got.outstanding == 1


async def test_pool_ejects_after_consecutive_failures_and_probes_once() -> None:
    pool = EndpointPool(configs("x", "y"), HealthSettings(failures_to_eject=2, probe_after_s=0.1))
    x = pool.endpoints[0]

    for _ in range(2):
        ep = await pool.acquire(MODEL, only=["x"])
        await pool.release(ep, healthy=False)
    assert x.ejected and pool.snapshot()[0]["in_rotation"] is False

    # While resting, everything goes to y.
    assert (await pool.acquire(MODEL)).name == "y"
    # Pinned to x only: while x rests, a caller is told at once (a retryable error) instead
    # of queueing; after the rest period it gets the single probe slot.
    with pytest.raises(EndpointsResting, match="out of rotation"):
        await pool.acquire(MODEL, only=["x"])
    await asyncio.sleep(0.12)
    probe = await asyncio.wait_for(pool.acquire(MODEL, only=["x"]), 1.0)
    assert probe is x
    assert x.probing
    with pytest.raises(EndpointsResting):
        await pool.acquire(MODEL, only=["x"])  # one probe at a time

    # A failed probe re-ejects at once; a successful one restores the endpoint.
    await pool.release(probe, healthy=False, probe=True)
    assert x.ejected and not x.probing
    await asyncio.sleep(0.12)
    probe2 = await asyncio.wait_for(pool.acquire(MODEL, only=["x"]), 1.0)
    await pool.release(probe2, healthy=True, probe=True)
    assert not x.ejected
    assert x.consecutive_failures == 0
    assert pool.snapshot()[0]["in_rotation"] is True


async def test_pool_neutral_failures_do_not_eject() -> None:
    pool = EndpointPool(configs("x"), HealthSettings(failures_to_eject=1))

    for _ in range(3):
        ep = await pool.acquire(MODEL)
        await pool.release(ep, healthy=None)

    assert pool.snapshot() == [
        {"endpoint": "x", "outstanding": 0, "calls": 3, "failures": 0, "in_rotation": True}
    ]


def test_candidates_by_model_and_name() -> None:
    pool = EndpointPool(
        [
            EndpointConfig(name="x", base_url="http://x.invalid/v1", models=["m1"]),
            EndpointConfig(name="y", base_url="http://y.invalid/v1"),
        ]
    )
    assert [e.name for e in pool.candidates("m1")] == ["x", "y"]  # y serves anything
    assert [e.name for e in pool.candidates("m2")] == ["y"]
    with pytest.raises(NoEndpointAvailable, match="among"):
        pool.candidates("m2", only=["x"])
