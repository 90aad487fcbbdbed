"""The shard actor: the single-machine engine on one shard's items, in the shard's own directory."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from medloom.runs.lock import RunLocked
from medloom.runs.shards import DONE_MARKER

LOCK_WAIT_S = 60.0
"""How long a relaunched shard waits for its killed predecessor's process (and lock) to go."""


class ShardWorker:
    """One shard (a Ray actor: ``ray.remote(ShardWorker)``). :meth:`run` resumes the shard directory,
    so a relaunched worker goes on from the files a dead one left: finished items are skipped and
    finished calls come from the shard's request cache."""

    def __init__(self, index: int):
        self.index = index

    def where(self) -> dict[str, Any]:
        """The node and process this shard runs on."""
        import ray

        return {"index": self.index, "node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    def run(
        self, shard_dir: str, slots: Any = None, retry_failed: bool = False, budget: Any = None
    ) -> dict[str, Any]:
        """Run (or go on with) the shard; writes its done marker (unless a budget cap stopped it) and
        returns its summary. ``budget`` is the run's shared ledger (``RayBudgetLedger``)."""
        from medloom.llm.http import AiohttpTransport
        from medloom.runs.runner import arun
        from medloom.scale.limits import CappedTransport

        path = Path(shard_dir)
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            transport = CappedTransport(AiohttpTransport(), slots, f"shard-{self.index}") if slots else None
            try:
                run = arun(
                    resume=str(path),
                    runs_dir=path.parent,
                    transport=transport,
                    retry_failed=retry_failed,
                    budget=budget,
                )
                result = asyncio.run(run)
                break
            except RunLocked:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)  # the killed worker's process still exits; its lock goes with it
        report = result.report
        summary = {
            **self.where(),
            "items": report.items,
            "kept": report.kept,
            "rejected": report.rejected,
            "failed": report.failed,
            "stopped_by": report.stopped_by.model_dump() if report.stopped_by is not None else None,
        }
        if report.stopped_by is not None:
            return summary  # not done: a resume with a higher cap goes on
        marker = path / DONE_MARKER
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        tmp.replace(marker)
        return summary
