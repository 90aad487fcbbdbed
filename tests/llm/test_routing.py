"""Sticky routing: an item's calls stay on one endpoint (its prefix cache) while that endpoint is in
rotation and not overloaded; otherwise least outstanding. No timing, no assumed shares."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import medloom
from medloom.llm.pool import EndpointPool, EndpointState, affinity_rank
from medloom.llm.settings import EndpointConfig, HealthSettings, LLMSettings
from medloom.runs.store import iter_events
from medloom.testing.fake import FakeOpenAIServer
from medloom.testing.mcq_student import McqStudent

MODEL = "m"
KEYS = [f"item-{i}" for i in range(60)]


def pool(*names: str, routing: Any = "sticky", slack: int = 4, **kwargs: Any) -> EndpointPool:
    configs = [EndpointConfig(name=n, base_url=f"http://{n}/v1", **kwargs) for n in names]
    return EndpointPool(
        configs, HealthSettings(failures_to_eject=1, probe_after_s=0.0), routing=routing, sticky_slack=slack
    )


def other(p: EndpointPool, ep: EndpointState) -> EndpointState:
    return next(e for e in p.endpoints if e is not ep)


async def hold(p: EndpointPool, n: int, affinity: str | None = None) -> list[EndpointState]:
    return [await p.acquire(MODEL, affinity=affinity) for _ in range(n)]


def home_name(key: str, names: str) -> str:
    """Where rendezvous hashing puts ``key`` among endpoints named by the letters of ``names``."""
    return max(names, key=lambda name: affinity_rank(key, name))


def test_homes_are_deterministic_independent_of_endpoint_order_and_use_every_endpoint() -> None:
    forward, backward = pool("x", "y", "z"), pool("z", "y", "x")
    homes = [forward.home(forward.endpoints, k) for k in KEYS]
    names = [h.name for h in homes if h is not None]
    assert names == [home_name(k, "xyz") for k in KEYS]
    assert names == [h.name for k in KEYS if (h := backward.home(backward.endpoints, k)) is not None]
    assert set(names) == {"x", "y", "z"}  # a fixed hash of fixed keys, not a random draw


async def test_calls_of_one_item_stick_to_its_home_endpoint() -> None:
    p = pool("x", "y", "z")
    for key in KEYS[:10]:
        home = p.home(p.endpoints, key)
        held = await hold(p, 5, key)  # within the slack: 4 more in flight than the idle others
        assert all(ep is home for ep in held)
        for ep in held:
            await p.release(ep, healthy=True)


async def test_overloaded_home_falls_back_to_least_outstanding_and_returns_after() -> None:
    p = pool("x", "y", slack=2)
    key = KEYS[0]
    home = p.home(p.endpoints, key)
    assert home is not None
    held = await hold(p, 3, key)  # home: 3 in flight, the other 0 → 3 > 0 + 2, overloaded
    assert all(ep is home for ep in held)
    spill = await p.acquire(MODEL, affinity=key)
    assert spill is other(p, home)
    await p.release(held.pop(), healthy=True)  # home 2, other 1: within the slack again
    assert await p.acquire(MODEL, affinity=key) is home


async def test_a_full_home_never_makes_its_items_wait_while_another_endpoint_has_a_slot() -> None:
    p = pool("x", "y", slack=1000, max_concurrency=2)
    key = KEYS[1]
    home = p.home(p.endpoints, key)
    assert home is not None
    await hold(p, 2, key)  # the home is full and stays full
    spill = [await asyncio.wait_for(p.acquire(MODEL, affinity=key), 5) for _ in range(2)]
    assert all(ep is other(p, home) for ep in spill)
    # Both full: the waiter gets the first slot freed, on whichever endpoint frees it.
    waiter = asyncio.create_task(p.acquire(MODEL, affinity=key))
    await asyncio.sleep(0)
    assert not waiter.done()
    await p.release(spill[0], healthy=True)
    assert await asyncio.wait_for(waiter, 5) is spill[0]


async def test_ejected_home_moves_its_items_to_their_next_endpoint_until_a_probe_succeeds() -> None:
    p = pool("x", "y", "z")
    key = KEYS[2]
    home = p.home(p.endpoints, key)
    assert home is not None
    ep = await p.acquire(MODEL, affinity=key)
    await p.release(ep, healthy=False, error="connection refused")  # 1 failure ejects here
    assert home.ejected
    ranked = sorted(p.endpoints, key=lambda e: affinity_rank(key, e.name), reverse=True)
    runner_up = ranked[1]
    # The first call after the (zero) rest is the probe of the ejected home; then the runner-up.
    probe = await p.acquire(MODEL, affinity=key)
    assert probe is home and home.probing
    moved = await hold(p, 3, key)
    assert all(e is runner_up for e in moved)
    await p.release(probe, healthy=True, probe=True)
    assert not home.ejected
    assert await p.acquire(MODEL, affinity=key) is home


async def test_calls_without_an_item_and_least_outstanding_routing_ignore_affinity() -> None:
    key = KEYS[3]
    sticky, balanced = pool("x", "y"), pool("x", "y", routing="least_outstanding")
    no_item = [(await sticky.acquire(MODEL)).name for _ in range(2)]
    with_item = [(await balanced.acquire(MODEL, affinity=key)).name for _ in range(2)]
    assert no_item == with_item == ["x", "y"]  # one each: least outstanding, pool order on ties


def test_routing_is_a_config_setting() -> None:
    assert LLMSettings().routing == "sticky"
    assert LLMSettings.model_validate({"routing": "least_outstanding"}).routing == "least_outstanding"
    with pytest.raises(ValueError, match="sticky"):
        LLMSettings.model_validate({"routing": "random"})


def _dataset(path: Path, n: int) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            options = {x: f"option {x.lower()} of question {i}" for x in "ABCD"}
            row = {"id": f"q{i}", "question": f"Question {i}: which option?", "options": options}
            fh.write(json.dumps({**row, "answer": "ABCD"[i % 4]}) + "\n")
    return path


def test_a_run_sends_every_call_of_an_item_to_the_items_home_endpoint(tmp_path: Path) -> None:
    """configs/mcq_refine.yaml (generate → verify → refine) on two fake endpoints: each item's
    generator, judge and refiner calls all go to one endpoint, the item's home."""
    import yaml

    config = yaml.safe_load((Path(__file__).parents[2] / "configs" / "mcq_refine.yaml").read_text())
    config["dataset"]["path"] = str(_dataset(tmp_path / "items.jsonl", 8))
    config["llm"] = {"routing": "sticky", "sticky_slack": 10_000}
    with FakeOpenAIServer(McqStudent()) as a, FakeOpenAIServer(McqStudent()) as b:
        config["endpoints"] = [
            {"name": "a", "base_url": a.base_url, "max_concurrency": 10_000},
            {"name": "b", "base_url": b.base_url, "max_concurrency": 10_000},
        ]
        result = medloom.run(config, runs_dir=tmp_path / "runs", no_cache=True)
    by_item: dict[str, set[str]] = {}
    for _, event in iter_events(result.run_dir / "trajectories.jsonl", {"llm_call"}):
        assert event.response is not None  # type: ignore[attr-defined]
        by_item.setdefault(event.item_id, set()).add(event.response.endpoint or "")  # type: ignore[attr-defined]
    assert len(by_item) == 8
    for item_id, endpoints in by_item.items():
        assert endpoints == {home_name(item_id, "ab")}, item_id
