"""Integration: the kg_multihop recipe against a real vLLM server (one item, small budgets).

The tiny base model is often wrong, so the item may be kept or rejected; what must hold is that
every LLM node ran against the server and the item ended with a reason the report names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medloom.runs.runner import arun
from tests.helpers import REPO, read_report

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


async def test_kg_multihop_runs_one_chain_against_vllm(vllm_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = await arun(
        REPO / "configs" / "kg_multihop.yaml",
        endpoints=[vllm_server.base_url],
        limit=1,
        runs_dir=tmp_path,
        overrides=["nodes.label.params.samples=2", "nodes.label.sampling.max_tokens=48"],
    )
    report = read_report(result.run_dir)
    assert report["items"] == 1 and report["failed"] == 0
    assert report["kept"] + report["rejected"] == 1
    events = [json.loads(line) for line in (result.run_dir / "trajectories.jsonl").read_text().splitlines()]
    calls = [e for e in events if e["type"] == "llm_call"]
    assert calls and all(c["response"] is not None for c in calls)
    (end,) = [e for e in events if e["type"] == "item_end"]
    if end["status"] == "kept":
        (row,) = [json.loads(line) for line in (result.run_dir / "data.jsonl").read_text().splitlines()]
        assert row["path"]["hops"] and row["difficulty"] in ("easy", "medium", "hard")
    else:
        assert end["reason"]
