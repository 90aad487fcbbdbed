"""Integration: the med_refl recipe against a real vLLM server, then every training export of the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medloom.runs.exports import training_dataset
from medloom.runs.runner import arun
from medloom.serving import VLLMServer
from tests.helpers import REPO

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

TINY = [
    "nodes.reason.sampling.max_tokens=96",
    "nodes.locate.sampling.max_tokens=24",
    "nodes.reflect.sampling.max_tokens=96",
]


async def test_med_refl_end_to_end_and_its_training_exports(vllm_server: VLLMServer, tmp_path: Path) -> None:
    result = await arun(
        REPO / "configs" / "med_refl.yaml",
        endpoints=[vllm_server.base_url],
        limit=2,
        runs_dir=tmp_path,
        overrides=TINY,
    )
    report = result.report
    assert (report.items, report.failed) == (2, 0), report.failure_reasons
    assert report.nodes["reason"].traces_out == 8
    events = [json.loads(line) for line in (result.run_dir / "trajectories.jsonl").read_text().splitlines()]
    located = [e for e in events if e["type"] == "verdict" and e["node"] == "locate"]
    assert all(len(e["verdict"]["step_flags"]) == 1 for e in located)
    pairs = [e["data"] for e in events if e["type"] == "note" and e["kind"] == "preference_pair"]

    dpo = training_dataset(result.run_dir, "dpo")
    recorded = [r for r in dpo if r["pair_kind"] in ("mid_reasoning", "post_reasoning")]
    assert len(recorded) == len(pairs)
    sft = training_dataset(result.run_dir, "sft")
    assert len(sft) == len(result.dataset)  # one conversation per kept (reflected) trace
    prm = training_dataset(result.run_dir, "prm")
    flagged = {e["trace_id"] for e in events if e["type"] == "verdict" and e["verdict"]["step_flags"]}
    assert {r["trace_id"] for r in prm if False in r["labels"]} <= flagged
    kto = training_dataset(result.run_dir, "kto")
    assert all(r["trace_id"] for r in kto) and set(kto["label"]) <= {True, False}
