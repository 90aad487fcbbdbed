"""Sharded runs without Ray: which shard owns an item, what run.json records, and the checks a resume
makes. The Ray side (actors, driver, merge) is :mod:`medloom.scale`; this module is what the
single-machine runner needs to run one shard's items.

An item belongs to shard ``sha256(item id) mod N``: stable across processes, machines and Python
versions (unlike ``hash()``), so a shard resumed anywhere picks exactly the items it owned.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from medloom.core.errors import RunError
from medloom.core.records import Item

SHARD_DIR = "shard-{index}"
DONE_MARKER = "DONE"


class ShardSlice(BaseModel):
    """The part of a sharded run one shard directory holds (recorded in the shard's run.json)."""

    index: int = Field(ge=0)
    count: int = Field(ge=1)


class ShardPlan(BaseModel):
    """What a sharded run was split by (recorded in the parent run.json); a resume must match it."""

    count: int = Field(ge=1)
    recipe_hash: str
    """sha256 of the config snapshot (after overrides), so a shard never runs another recipe."""
    input_fingerprint: str
    """sha256 over the input's item ids in order (and skipped rows), so the split stays the same."""
    items: int = 0
    endpoint_placement: str = "partition"


def shard_of(item_id: str, count: int) -> int:
    """The shard that owns ``item_id`` among ``count`` shards."""
    digest = hashlib.sha256(item_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def row_key(index: int, entry: Item | Exception) -> str:
    """The key a row is sharded by: the item id, or for a bad row its row number."""
    return entry.id if isinstance(entry, Item) else f"row-{index}"


@dataclass
class ShardItems:
    """An item source limited to one shard's items (bad rows too, so each is reported once)."""

    inner: Any
    part: ShardSlice

    def count(self) -> int | None:
        return None  # unknown without reading the input

    def __iter__(self) -> Iterator[tuple[int, Item | Exception]]:
        for index, entry in self.inner:
            if shard_of(row_key(index, entry), self.part.count) == self.part.index:
                yield index, entry


def recipe_hash(config: dict[str, Any]) -> str:
    """A stable hash of a config dict (key order does not matter), budget caps aside: a resume may
    raise them."""
    run = {k: v for k, v in (config.get("run") or {}).items() if k != "budget"}
    text = json.dumps({**config, "run": run}, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def input_fingerprint(items: Any) -> tuple[str, int]:
    """(sha256 over the row keys in order, how many items) of an item source."""
    digest = hashlib.sha256()
    n = 0
    for index, entry in items:
        digest.update(row_key(index, entry).encode("utf-8") + b"\n")
        n += isinstance(entry, Item)
    return digest.hexdigest(), n


class ShardMismatch(RunError):
    """A resume of a sharded run that does not match how it was split."""


def check_resume(plan: ShardPlan, run_id: str, *, count: int, recipe: str, fingerprint: str) -> None:
    """Refuse a resume with another shard count, recipe or input (each would move items between
    shards, so finished items would run again or be lost)."""
    if count != plan.count:
        raise ShardMismatch(
            f"run {run_id} was split into {plan.count} shards; resuming with --shards {count} would move "
            f"items between shards: resume with --shards {plan.count}, or start a new run"
        )
    if recipe != plan.recipe_hash:
        raise ShardMismatch(
            f"run {run_id}: the config differs from the one its shards run (recipe hash "
            f"{plan.recipe_hash[:12]} → {recipe[:12]}); resume without overrides, or start a new run"
        )
    if fingerprint != plan.input_fingerprint:
        raise ShardMismatch(
            f"run {run_id}: the input items changed since the run was split (fingerprint "
            f"{plan.input_fingerprint[:12]} → {fingerprint[:12]}); restore the dataset, or start a new run"
        )


def sharded_run_error(run_id: str, plan: ShardPlan) -> RunError:
    """A plain (single-machine) resume of a sharded run's parent directory."""
    return RunError(
        f"run {run_id} is sharded over {plan.count} shards: resume it with "
        f"`medloom run --resume {run_id} --backend ray --shards {plan.count}`"
    )
