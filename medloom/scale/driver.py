"""The driver of a sharded run (``medloom run CONFIG --backend ray --shards N``).

It splits the items by a stable hash of their id (:mod:`medloom.runs.shards`), records the split in
run.json, makes one shard directory per shard (``RUN/shard-K``, itself a run directory), starts one
Ray actor per shard that has no done marker, relaunches a shard whose actor died (it resumes from
its own files), and merges the shards into the run's dataset and report when all are done.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from medloom.core.budget import BudgetCaps, CapReached, Spend
from medloom.core.errors import ConfigError, RunError
from medloom.core.records import Item
from medloom.data.sources import item_source
from medloom.graphs.loader import load_raw, validate_spec
from medloom.graphs.spec import GraphSpec
from medloom.runs.budget import check_budget, spent_before
from medloom.runs.lock import RunLock
from medloom.runs.rundir import RunDir, Session
from medloom.runs.runner import RunResult, _finish, _localize_dataset_path, prepare_config
from medloom.runs.shards import (
    DONE_MARKER,
    SHARD_DIR,
    ShardPlan,
    ShardSlice,
    check_resume,
    input_fingerprint,
    recipe_hash,
)
from medloom.scale import connect, require_ray
from medloom.scale.budget import BudgetCounter, RayBudgetLedger
from medloom.scale.limits import EndpointSlots
from medloom.scale.merge import check_items, concatenate_trajectories, shard_dirs
from medloom.scale.worker import ShardWorker

log = logging.getLogger("medloom")

Placement = Literal["auto", "partition", "shared"]


@dataclass
class ShardOptions:
    """How a sharded run is laid on the cluster."""

    shards: int
    placement: Placement = "auto"
    """``partition``: each shard gets its own endpoints (needs at least one per shard); ``shared``:
    every shard uses every endpoint (best: one router URL) under a cluster-wide cap per endpoint;
    ``auto``: partition when there are enough endpoints, else shared."""
    pins: dict[str, str] = field(default_factory=dict)
    """Endpoint URL (or name) → a Ray custom resource of the node hosting it: a shard using that
    endpoint is placed on that node."""
    cluster_concurrency: int | None = None
    """Shared endpoints: the calls in flight per endpoint across all shards (default: each
    endpoint's ``max_concurrency``)."""
    shard_cpus: float = 1.0
    """Ray CPUs each shard actor takes (an asyncio engine mostly waits on the network)."""
    max_restarts: int = 3
    """How often one shard is relaunched after its actor died, before the run gives up."""
    address: str | None = None
    """The Ray cluster (default: ``$RAY_ADDRESS``, else a local one)."""


@dataclass
class ShardHooks:
    """Callbacks for progress (and for tests, which kill a shard actor on purpose)."""

    on_launch: Callable[[int, Any], None] | None = None
    """Called with the shard index and its actor handle each time a shard starts."""
    on_done: Callable[[dict[str, Any]], None] | None = None
    """Called with a shard's summary when it ends."""
    summaries: dict[int, dict[str, Any]] = field(default_factory=dict)
    launches: dict[int, int] = field(default_factory=dict)
    peaks: dict[str, int] = field(default_factory=dict)
    """Shared endpoints: the most calls each had in flight at once, cluster-wide."""


def run_sharded(
    config: str | Path | GraphSpec | dict[str, Any] | None = None,
    *,
    options: ShardOptions,
    overrides: list[str] | None = None,
    endpoints: list[str] | None = None,
    limit: int | None = None,
    concurrency: int | None = None,
    resume: str | None = None,
    retry_failed: bool = False,
    runs_dir: str | Path | None = None,
    no_cache: bool = False,
    api_key_env: str | None = None,
    endpoint_concurrency: int | None = None,
    hooks: ShardHooks | None = None,
    on_run_dir: Callable[[Path], None] | None = None,
    caps: BudgetCaps | None = None,
) -> RunResult:
    """Run (or resume) a recipe sharded over a Ray cluster; returns the merged run, as :func:`medloom.run`."""
    if options.shards < 1:
        raise ConfigError(f"--shards must be at least 1, got {options.shards}")
    require_ray()  # before any run directory is made
    hooks = hooks or ShardHooks()
    base = Path(runs_dir) if runs_dir else None
    if resume:
        run = RunDir.open(base or Path("runs"), resume)
        meta = run.read_meta()
        if meta.shards is None:
            raise RunError(f"run {run.run_id} is not sharded: resume it without --backend ray")
        data = run.read_config()
        config_file = meta.config_file
        file = str(run.config_path)
        if endpoints or overrides:
            raise ConfigError("a sharded run resumes with its own config: drop --endpoint and --set")
        if caps is not None and caps.any:  # a resume may raise the caps (they bound the whole run)
            data.setdefault("run", {}).setdefault("budget", {}).update(caps.model_dump(exclude_none=True))
    else:
        if config is None:
            raise ConfigError("give a config file (or --resume RUN_ID)")
        if isinstance(config, GraphSpec):
            config = config.model_dump(mode="json", by_alias=True, exclude_none=True)
        config_file = str(Path(config).resolve()) if isinstance(config, str | Path) else None
        raw = config if isinstance(config, dict) else load_raw(config)
        file = str(config) if config_file else "<config>"
        data = prepare_config(
            raw,
            file=file,
            overrides=overrides,
            endpoints=endpoints,
            limit=limit,
            concurrency=concurrency,
            no_cache=no_cache,
            api_key_env=api_key_env,
            endpoint_concurrency=endpoint_concurrency,
            caps=caps,
        )
        _localize_dataset_path(data, Path(config_file).parent if config_file else None)
    base_dir = Path(config_file).parent if config_file else None
    spec = validate_spec(data, file=file)
    check_budget(spec, file=file)
    if not spec.endpoints:
        raise ConfigError(
            "a sharded run needs endpoints: pass --endpoint URL (repeat for several), e.g. the URLs "
            "`medloom serve --ray` prints",
            key="endpoints",
        )
    fingerprint, n_items = input_fingerprint(item_source(spec, base_dir))
    placement = _placement(options, len(spec.endpoints))
    plan = ShardPlan(
        count=options.shards,
        recipe_hash=recipe_hash(data),
        input_fingerprint=fingerprint,
        items=n_items,
        endpoint_placement=placement,
    )
    if resume:
        assert meta.shards is not None
        check_resume(
            meta.shards, run.run_id, count=options.shards, recipe=plan.recipe_hash, fingerprint=fingerprint
        )
        run.write_config(data)
    else:
        source = raw if config_file else None
        root = base or Path(spec.run.runs_dir)
        run = RunDir.create(root, spec.name, data, config_file, source_config=source, shards=plan)
    if on_run_dir is not None:
        on_run_dir(run.path)
    with RunLock(run.path):
        _open_session(run, spec)
        status = "crashed"
        stopped_by: CapReached | None = None
        try:
            shards = _make_shards(run, data, spec, plan, config_file)
            stopped_by = _run_shards(run, shards, spec, options, hooks, retry_failed)
            expected = {entry.id for _, entry in item_source(spec, base_dir) if isinstance(entry, Item)}
            check_items(shards, None if stopped_by else expected)  # stopped: no duplicates, some left
            concatenate_trajectories(run, shards)
            status = "stopped" if stopped_by else "completed"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            report, written = _finish(run, spec, data, status, stopped_by)
    if report is None or not written:  # pragma: no cover - a storage failure raised above
        raise RunError(f"run {run.run_id}: the report could not be written")
    return RunResult(run_dir=run.path, report=report)


def _placement(options: ShardOptions, n_endpoints: int) -> Literal["partition", "shared"]:
    if options.placement == "shared":
        return "shared"
    enough = n_endpoints >= options.shards
    if options.placement == "partition" and not enough:
        raise ConfigError(
            f"--endpoint-placement partition gives each shard its own endpoints: {options.shards} shards "
            f"need at least {options.shards} endpoints, got {n_endpoints}; give more endpoints, fewer "
            "shards, or --endpoint-placement shared (ideally with one router URL)"
        )
    return "partition" if enough else "shared"


def _open_session(run: RunDir, spec: GraphSpec) -> None:
    meta = run.read_meta()
    for earlier in meta.sessions:
        if earlier.status == "running":
            earlier.status = "interrupted"
    meta.sessions.append(
        Session(
            started=time.time(),
            command=[Path(sys.argv[0]).name, *sys.argv[1:]],
            endpoints=[e.base_url for e in spec.endpoints],
            pid=os.getpid(),
            host=socket.gethostname(),
        )
    )
    run.write_meta(meta)


def shard_config(
    data: dict[str, Any], spec: GraphSpec, plan: ShardPlan, index: int, path: Path
) -> dict[str, Any]:
    """The config a shard runs: its own endpoints (when partitioned) and its own request cache."""
    config = copy.deepcopy(data)
    if plan.endpoint_placement == "partition":
        mine = [e for j, e in enumerate(config.get("endpoints") or []) if j % plan.count == index]
        config["endpoints"] = mine
        names = {e.get("name") for e in mine if isinstance(e, dict)}
        for alias, model in (config.get("models") or {}).items():
            if isinstance(model, dict) and model.get("endpoints"):
                kept = [name for name in model["endpoints"] if name in names]
                if not kept:
                    raise ConfigError(
                        f"model '{alias}' is tied to endpoints {model['endpoints']}, none of which shard "
                        f"{index} gets when partitioning; use --endpoint-placement shared",
                        key=f"models.{alias}.endpoints",
                    )
                model["endpoints"] = kept
    if spec.llm.cache.enabled:
        config.setdefault("llm", {}).setdefault("cache", {})["path"] = str(path / "cache" / "llm.sqlite")
    return config


def _make_shards(
    run: RunDir, data: dict[str, Any], spec: GraphSpec, plan: ShardPlan, config_file: str | None
) -> list[RunDir]:
    """The shard directories, made where missing (a resume finds them)."""
    for index in range(plan.count):
        name = SHARD_DIR.format(index=index)
        if not (run.path / name / "run.json").exists():
            config = shard_config(data, spec, plan, index, run.path / name)
            part = ShardSlice(index=index, count=plan.count)
            RunDir.create(run.path, spec.name, config, config_file, name=name, shard=part)
    return shard_dirs(run, plan.count)


def _pinned_resources(spec_endpoints: list[Any], pins: dict[str, str]) -> dict[str, float]:
    """The custom resources a shard asks for so that it lands on the nodes hosting its endpoints."""
    wanted: dict[str, float] = {}
    for endpoint in spec_endpoints:
        url, name = endpoint.get("base_url", ""), endpoint.get("name", "")
        resource = pins.get(str(url).rstrip("/")) or pins.get(url) or pins.get(name)
        if resource:
            wanted[resource] = 0.001
    return wanted


def _run_shards(
    run: RunDir,
    shards: list[RunDir],
    spec: GraphSpec,
    options: ShardOptions,
    hooks: ShardHooks,
    retry_failed: bool,
) -> CapReached | None:
    """One actor per unfinished shard; relaunch those whose actor died; return when all are done
    (or stopped by a budget cap: then the cap reached)."""
    ray = connect(options.address)
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

    slots = None
    meta = run.read_meta()
    assert meta.shards is not None
    if meta.shards.endpoint_placement == "shared":
        caps = {e.base_url: options.cluster_concurrency or e.max_concurrency for e in spec.endpoints}
        slots = ray.remote(EndpointSlots).options(num_cpus=0, max_concurrency=10_000).remote(caps)
    counter, budget = None, None
    if spec.run.budget.any:  # one counter for all shards, seeded with what they paid before
        earlier = sum((spent_before(s.trajectories, spec.llm.prices) for s in shards), Spend())
        counter = ray.remote(BudgetCounter).options(num_cpus=0).remote(spec.run.budget, earlier)
        budget = RayBudgetLedger(counter, spec.run.budget)
    remote_worker = ray.remote(ShardWorker)
    pending: dict[Any, tuple[int, Any]] = {}

    def launch(index: int) -> None:
        config = shards[index].read_config()
        resources = _pinned_resources(config.get("endpoints") or [], options.pins)
        placed = remote_worker.options(num_cpus=options.shard_cpus, resources=resources, max_restarts=0)
        actor = placed.remote(index)
        hooks.launches[index] = hooks.launches.get(index, 0) + 1
        ref = actor.run.remote(str(shards[index].path), slots, retry_failed, budget)
        pending[ref] = (index, actor)
        if hooks.on_launch is not None:
            hooks.on_launch(index, actor)

    for index, shard in enumerate(shards):
        if not (shard.path / DONE_MARKER).exists():
            launch(index)
        else:
            log.info("run %s: shard %d already done", run.run_id, index)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            index, actor = pending.pop(ready[0])
            try:
                summary = ray.get(ready[0])
            except RayTaskError as exc:  # the shard's own error (config, disk): relaunching won't help
                raise exc.as_instanceof_cause() from None
            except (ActorDiedError, ActorUnavailableError, RayActorError) as exc:
                if slots is not None:
                    ray.get(slots.release_holder.remote(f"shard-{index}"))
                restarts = hooks.launches.get(index, 1)
                if restarts > options.max_restarts:
                    raise RunError(
                        f"shard {index} of run {run.run_id} died {restarts} times ({exc}); its files are "
                        f"kept: fix the cause, then `medloom run --resume {run.run_id} --backend ray "
                        f"--shards {len(shards)}`"
                    ) from None
                why = type(exc).__name__
                log.warning("run %s: shard %d died (%s); relaunching it", run.run_id, index, why)
                launch(index)
                continue
            ray.kill(actor)
            hooks.summaries[index] = summary
            if hooks.on_done is not None:
                hooks.on_done(summary)
        if slots is not None:
            hooks.peaks.update(ray.get(slots.peaks.remote()))
        unfinished = [s for s in shards if not (s.path / DONE_MARKER).exists()]
        if not unfinished:
            return None
        if counter is None:  # pragma: no cover - a shard returns without its marker only when stopped
            raise RunError(f"run {run.run_id}: shards {[s.path.name for s in unfinished]} ended unfinished")
        reached: CapReached | None = ray.get(counter.exceeded.remote())
        return reached
    finally:
        for _, actor in pending.values():
            ray.kill(actor)
        for helper in (slots, counter):
            if helper is not None:
                ray.kill(helper)
