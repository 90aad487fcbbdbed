"""Issue 19: sharded runs on a local two-node Ray cluster against fake endpoints (real sockets)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import medloom
from medloom.core.errors import RunError
from medloom.runs.fold import compute_stats
from medloom.runs.rundir import RunDir
from medloom.runs.shards import ShardMismatch, shard_of
from medloom.runs.store import final_outcomes
from medloom.testing.fake import FakeOpenAIServer, FakeRequest, Reply
from medloom.testing.mcq_student import McqStudent
from tests.helpers import RECIPE

pytest.importorskip("ray")

from medloom.scale.driver import ShardHooks, ShardOptions, run_sharded

LIMIT = 10


def rows(dataset: Any) -> list[str]:
    """The rows as sorted JSON (run ids aside), to compare a sharded run with a single-machine one."""
    return sorted(
        json.dumps({k: v for k, v in row.items() if k != "run_id"}, sort_keys=True) for row in dataset
    )


def input_ids() -> set[str]:
    lines = (RECIPE.parent / "data" / "demo_mcq.jsonl").read_text().splitlines()[:LIMIT]
    return {json.loads(line)["id"] for line in lines}


class MeteredStudent:
    """McqStudent's answers after ``delay_s``, counting the calls in flight (the server's view)."""

    def __init__(self, delay_s: float):
        self.student = McqStudent()
        self.delay_s = delay_s
        self.in_flight = 0
        self.peak = 0

    async def __call__(self, req: FakeRequest) -> Reply:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
            return self.student(req)
        finally:
            self.in_flight -= 1


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[FakeOpenAIServer, FakeOpenAIServer]]:
    with FakeOpenAIServer(McqStudent()) as a, FakeOpenAIServer(McqStudent()) as b:
        yield a, b


@pytest.fixture(scope="module")
def sharded(
    ray_cluster: dict[str, str], servers: tuple[FakeOpenAIServer, FakeOpenAIServer], tmp_path_factory: Any
) -> tuple[Any, ShardHooks]:
    """A 2-shard run, each shard on its own endpoint, pinned to the node that "hosts" it."""
    a, b = servers
    hooks = ShardHooks()
    options = ShardOptions(shards=2, pins={a.base_url: "ep_a", b.base_url: "ep_b"}, shard_cpus=0.25)
    result = run_sharded(
        RECIPE,
        options=options,
        endpoints=[a.base_url, b.base_url],
        limit=LIMIT,
        concurrency=2,
        runs_dir=tmp_path_factory.mktemp("runs"),
        hooks=hooks,
    )
    return result, hooks


def test_a_sharded_run_equals_a_single_machine_run(
    sharded: tuple[Any, ShardHooks], servers: tuple[FakeOpenAIServer, FakeOpenAIServer], tmp_path: Path
) -> None:
    result, hooks = sharded
    single = medloom.run(
        RECIPE, endpoints=[servers[0].base_url], limit=LIMIT, concurrency=2, runs_dir=tmp_path
    )
    assert rows(result.dataset) == rows(single.dataset)
    assert {row["run_id"] for row in result.dataset} == {result.run_id}
    assert set(final_outcomes(result.run_dir / "trajectories.jsonl")) == input_ids()
    assert (result.report.items, result.report.kept) == (single.report.items, single.report.kept)
    meta = RunDir(result.run_dir).read_meta()
    assert meta.shards is not None and meta.shards.count == 2 and meta.shards.items == LIMIT
    assert len(meta.shards.recipe_hash) == len(meta.shards.input_fingerprint) == 64
    for index in (0, 1):  # each shard ran exactly the items its hash gives it, in its own directory
        shard = result.run_dir / f"shard-{index}"
        owned = {i for i in input_ids() if shard_of(i, 2) == index}
        assert set(final_outcomes(shard / "trajectories.jsonl")) == owned
        assert (shard / "DONE").exists() and (shard / "cache" / "llm.sqlite").exists()
    assert sum(s["items"] for s in hooks.summaries.values()) == LIMIT
    stats = compute_stats(RunDir(result.run_dir))  # `medloom stats` and the viewer read the merged file
    assert stats.report.items == LIMIT


def test_shards_run_on_the_nodes_that_host_their_endpoints(
    sharded: tuple[Any, ShardHooks], ray_cluster: dict[str, str]
) -> None:
    _, hooks = sharded
    assert hooks.summaries[0]["node"] == ray_cluster["ep_a"]
    assert hooks.summaries[1]["node"] == ray_cluster["ep_b"]


def test_a_resume_with_another_shard_count_is_refused(sharded: tuple[Any, ShardHooks]) -> None:
    result, _ = sharded
    with pytest.raises(ShardMismatch, match=r"split into 2 shards.*--shards 2"):
        run_sharded(resume=str(result.run_dir), options=ShardOptions(shards=3))
    with pytest.raises(RunError, match="--backend ray --shards 2"):
        medloom.run(resume=str(result.run_dir))


def test_a_killed_shard_is_relaunched_and_loses_no_item(ray_cluster: dict[str, str], tmp_path: Path) -> None:
    """Shard 0's actor is killed after it finished some items; the relaunched one resumes: every
    item ends once, and no item that had finished is asked for again (the server's counts)."""
    import ray

    with FakeOpenAIServer(MeteredStudent(delay_s=0.05)) as server:
        finished_at_kill: dict[str, int] = {}
        hooks = ShardHooks()
        killed = threading.Event()

        def requests_per_question() -> Counter[str]:
            return Counter(q for req in server.requests for q in questions if q in req.prompt_text)

        def kill_after_two_items(actor: Any, shard: Path) -> None:
            trajectories = shard / "trajectories.jsonl"
            while not trajectories.exists() or trajectories.read_bytes().count(b'"type":"item_end"') < 2:
                time.sleep(0.05)
            ray.kill(actor, no_restart=True)
            done = set(final_outcomes(trajectories))
            counts = requests_per_question()
            finished_at_kill.update({by_id[i]: counts[by_id[i]] for i in done})
            killed.set()

        def on_launch(index: int, actor: Any) -> None:
            if index == 0 and hooks.launches[0] == 1:
                shard = next(runs.glob("*/shard-0"))
                threading.Thread(target=kill_after_two_items, args=(actor, shard), daemon=True).start()

        lines = [json.loads(x) for x in (RECIPE.parent / "data" / "demo_mcq.jsonl").read_text().splitlines()]
        by_id = {row["id"]: row["question"] for row in lines[:LIMIT]}
        questions = list(by_id.values())
        runs = tmp_path / "runs"
        hooks.on_launch = on_launch
        result = run_sharded(
            RECIPE,
            options=ShardOptions(shards=2, shard_cpus=0.25),
            endpoints=[server.base_url],
            limit=LIMIT,
            concurrency=1,
            runs_dir=runs,
            hooks=hooks,
        )
        assert killed.is_set() and hooks.launches[0] == 2 and hooks.launches[1] == 1
        assert set(final_outcomes(result.run_dir / "trajectories.jsonl")) == input_ids()
        ends = (result.run_dir / "trajectories.jsonl").read_bytes().count(b'"type":"item_end"')
        assert ends == LIMIT  # no item ended twice
        after = requests_per_question()
        assert finished_at_kill and {q: after[q] for q in finished_at_kill} == finished_at_kill


def test_shards_sharing_an_endpoint_keep_a_cluster_wide_cap(
    ray_cluster: dict[str, str], tmp_path: Path
) -> None:
    """Four shards over one endpoint, each allowed 4 calls in flight, never exceed the shared cap of 2."""
    student = MeteredStudent(delay_s=0.05)
    with FakeOpenAIServer(student) as server:
        hooks = ShardHooks()
        result = run_sharded(
            RECIPE,
            options=ShardOptions(shards=4, placement="shared", cluster_concurrency=2, shard_cpus=0.25),
            endpoints=[server.base_url],
            endpoint_concurrency=4,
            limit=LIMIT,
            concurrency=4,
            runs_dir=tmp_path,
            hooks=hooks,
        )
    assert result.report.items == LIMIT
    assert student.peak <= 2 and hooks.peaks[server.base_url] <= 2
    assert RunDir(result.run_dir).read_meta().shards.endpoint_placement == "shared"  # type: ignore[union-attr]


def test_one_counter_sums_what_every_shard_process_spends(ray_cluster: dict[str, str]) -> None:
    """Two processes charge 3 calls each against a cap of 5: neither alone reaches it, together they do."""
    import ray

    from medloom.core.budget import BudgetCaps, Spend
    from medloom.scale.budget import BudgetCounter, RayBudgetLedger

    caps = BudgetCaps(max_calls=5)
    ledger = RayBudgetLedger(ray.remote(BudgetCounter).options(num_cpus=0).remote(caps), caps)

    @ray.remote(num_cpus=0)
    def spend_three(shared: RayBudgetLedger) -> int:
        shared.charge(Spend(calls=3))
        return asyncio.run(shared.spent()).calls  # after its own charge (one caller: in order)

    seen = ray.get([spend_three.remote(ledger), spend_three.remote(ledger)])
    assert min(seen) >= 3
    reached = asyncio.run(ledger.exceeded())
    assert reached is not None and reached.cap == "max_calls" and reached.spent.calls == 6


def test_a_budget_cap_stops_all_shards_and_a_raised_cap_finishes_the_run(
    ray_cluster: dict[str, str], tmp_path: Path
) -> None:
    from medloom.core.budget import BudgetCaps

    with FakeOpenAIServer(McqStudent()) as server:
        options = ShardOptions(shards=2, shard_cpus=0.25)
        stopped = run_sharded(
            RECIPE,
            options=options,
            endpoints=[server.base_url],
            limit=LIMIT,
            concurrency=1,
            runs_dir=tmp_path,
            caps=BudgetCaps(max_calls=3),
        )
        report = stopped.report
        assert report.stopped_by is not None and report.stopped_by.cap == "max_calls"
        assert report.stopped_by.spent.calls >= 3 and report.items < LIMIT
        assert not all((stopped.run_dir / f"shard-{k}" / "DONE").exists() for k in (0, 1))
        paid_before = server.request_count
        resumed = run_sharded(resume=str(stopped.run_dir), options=options, caps=BudgetCaps(max_calls=10_000))
    assert resumed.report.stopped_by is None and resumed.report.items == LIMIT
    assert set(final_outcomes(resumed.run_dir / "trajectories.jsonl")) == input_ids()
    assert all((resumed.run_dir / f"shard-{k}" / "DONE").exists() for k in (0, 1))
    assert resumed.report.spend.calls >= paid_before  # the whole run's paid calls, both sessions
