"""Integration: the reasonmed recipe end to end against a real vLLM server (tiny settings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medloom.runs.runner import arun
from medloom.serving import VLLMServer
from tests.helpers import REPO

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

TINY = [
    "nodes.generate.samples=1",  # 3 CoTs: one per temperature
    "nodes.generate.sampling.max_tokens=96",
    "nodes.verify.verifiers.1.sampling.max_tokens=32",
    "nodes.refine.sampling.max_tokens=64",
    "nodes.rank.sampling.max_tokens=16",
    "nodes.summarise.sampling.max_tokens=48",
]


async def test_reasonmed_end_to_end(vllm_server: VLLMServer, tmp_path: Path) -> None:
    result = await arun(
        REPO / "configs" / "reasonmed.yaml",
        endpoints=[vllm_server.base_url],
        limit=1,
        runs_dir=tmp_path,
        overrides=TINY,
    )
    report = result.report
    assert (report.items, report.failed) == (1, 0), report.failure_reasons
    assert report.nodes["generate"].traces_out == 3
    verify = report.nodes["verify"]
    assert verify.passed + verify.failed >= 3
    # Every first-pass failure went to the refiner, and every refinement was verified again.
    assert report.nodes["refine"].traces_in == verify.failed
    assert verify.passed + verify.failed == 3 + report.nodes["refine"].traces_out
    events = [json.loads(line) for line in (result.run_dir / "trajectories.jsonl").read_text().splitlines()]
    (end,) = [e for e in events if e["type"] == "item_end"]
    if report.kept:
        assert 1 <= len(result.dataset) <= 2
        for row in result.dataset:
            assert row["summary"] and row["difficulty"] in ("easy", "medium", "hard")
            assert row["predicted"] == row["answer"]
    else:
        assert end["status"] == "rejected" and end["reason"]
