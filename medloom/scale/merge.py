"""Merge a sharded run: the shards' trajectories into the run's own file, then the usual report,
dataset and card, so ``medloom stats``, ``view`` and ``export`` read a sharded run like any other."""

from __future__ import annotations

import shutil
from pathlib import Path

from medloom.core.errors import RunError
from medloom.runs.rundir import RunDir
from medloom.runs.shards import SHARD_DIR
from medloom.runs.store import final_outcomes


class MergeError(RunError):
    """The shards' items do not add up to the input's (lost or duplicated items)."""


def shard_dirs(run: RunDir, count: int) -> list[RunDir]:
    return [RunDir(run.path / SHARD_DIR.format(index=k)) for k in range(count)]


def check_items(shards: list[RunDir], expected: set[str] | None) -> dict[str, int]:
    """Which shard finished each item; a :class:`MergeError` when an item ended in two shards, or the
    finished ids are not the input's (``expected``; None for a run a budget cap stopped early)."""
    owner: dict[str, int] = {}
    for index, shard in enumerate(shards):
        for item_id in final_outcomes(shard.trajectories):
            if item_id in owner:
                raise MergeError(
                    f"item {item_id} ended in shard-{owner[item_id]} and shard-{index}: the run's shards "
                    "overlap (was a shard directory copied?); start a new run"
                )
            owner[item_id] = index
    if expected is None:
        return owner
    missing, extra = expected - owner.keys(), owner.keys() - expected
    if missing or extra:
        raise MergeError(
            f"the shards' items are not the input's: {len(missing)} missing (e.g. {sorted(missing)[:3]}), "
            f"{len(extra)} not in the input (e.g. {sorted(extra)[:3]}); resume the run to finish them"
        )
    return owner


def concatenate_trajectories(run: RunDir, shards: list[RunDir]) -> Path:
    """Write the shards' trajectory files, one after the other, as the run's (atomically)."""
    tmp = run.trajectories.with_name(".trajectories.merging")
    with tmp.open("wb") as out:
        for shard in shards:
            if shard.trajectories.exists():
                with shard.trajectories.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
    tmp.replace(run.trajectories)
    return run.trajectories
