"""Integration: `medloom eval` with the medprompt solver against a real vLLM server (1 item)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medloom.serving import VLLMServer
from tests.helpers import REPO, medloom_cli

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def test_eval_medprompt_on_one_demo_question(vllm_server: VLLMServer, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = medloom_cli(
        "eval",
        "configs/medprompt.yaml",
        "--dataset",
        str(REPO / "configs" / "data" / "demo_mcq.jsonl"),
        "--endpoint",
        vllm_server.base_url,
        "--limit",
        "1",
        "--set",
        "nodes.shuffle.sampling.max_tokens=48",
        "--set",
        "nodes.fewshot.params.k=2",
        "--out",
        str(out),
        "--json",
        "--no-cache",
        timeout=110,
    )
    assert result.returncode == 0, result.stderr
    (solver,) = json.loads(result.stdout)["solvers"]
    assert solver["solver"] == "medprompt" and solver["n"] == 1
    assert solver["completion_tokens"] > 0 and solver["prompt_tokens"] > 100
    assert 0.0 <= solver["ci_low"] <= solver["accuracy"] <= solver["ci_high"] <= 1.0
    (pred,) = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert pred["calls"] == 5 and pred["gold"] == "B"
    if pred["predicted"] is not None:
        votes = json.loads(pred["detail"]["votes"])
        assert votes[pred["predicted"]] == max(votes.values()) and sum(votes.values()) <= 5
    assert (out / "results.md").read_text().count("| medprompt |") == 1
