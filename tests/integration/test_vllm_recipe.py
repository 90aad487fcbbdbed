"""Integration: medloom against a real local vLLM server (the embedded default model).

One server is shared by the session (``vllm_server`` in tests/conftest.py); the kill test
starts its own. CI sets MEDLOOM_REQUIRE_VLLM so a missing vLLM fails instead of skipping.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest

from medloom.llm import EndpointConfig, LLMClient, LLMRequest
from medloom.runs.runner import arun
from medloom.serving import DEFAULT_MODEL_NAME, ServerConfig, VLLMServer
from tests.helpers import RECIPE, read_report
from tests.vllm_fixtures import TEST_KV_CACHE_GIB

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

FEW_SHOT = (
    "Question: Which organ makes insulin?\nA) Liver\nB) Pancreas\nStep 1: Beta cells make insulin.\n"
    "Step 2: Beta cells sit in the pancreas.\nAnswer: B\n###\n"
    "Question: Which vector transmits malaria?\nA) Anopheles mosquito\nB) Tsetse fly\nStep 1:"
)


def _client(server: VLLMServer, **endpoint: object) -> LLMClient:
    return LLMClient([EndpointConfig(name="vllm", base_url=server.base_url, **endpoint)])  # type: ignore[arg-type]


async def test_completion_with_n_samples_logprobs_and_stop(vllm_server: VLLMServer) -> None:
    client = _client(vllm_server)
    request = LLMRequest(
        model=DEFAULT_MODEL_NAME,
        prompt=FEW_SHOT,
        temperature=0.8,
        max_tokens=48,
        n=3,
        logprobs=2,
        stop=("###",),
        seed=7,
    )
    response = await client.generate(request)
    await client.aclose()
    assert len(response.choices) == 3
    assert response.endpoint == "vllm"
    assert response.usage.completion_tokens > 0 and response.usage.prompt_tokens > 20
    for choice in response.choices:
        assert "###" not in choice.text
        assert choice.finish_reason in ("stop", "length")
        assert choice.logprobs and all(lp.logprob <= 0 for lp in choice.logprobs)


async def test_chat_uses_the_prepared_chat_template(vllm_server: VLLMServer) -> None:
    client = _client(vllm_server)
    from medloom.llm import ChatMessage

    request = LLMRequest(
        model=DEFAULT_MODEL_NAME,
        messages=(ChatMessage(role="user", content="Name one organ of the human body."),),
        max_tokens=16,
    )
    response = await client.generate(request)
    await client.aclose()
    assert response.choices[0].text.strip()
    assert response.usage.prompt_tokens > 5


async def test_structured_output_returns_schema_valid_json(vllm_server: VLLMServer) -> None:
    client = _client(vllm_server, structured_output="vllm")
    schema = {
        "type": "object",
        "properties": {"verdict": {"type": "string", "enum": ["Correct", "Error"]}},
        "required": ["verdict"],
    }
    request = LLMRequest(
        model=DEFAULT_MODEL_NAME,
        prompt="Is the sky green? Reply in JSON.\n",
        max_tokens=24,
        response_schema=schema,
    )
    response = await client.generate(request)
    await client.aclose()
    value = json.loads(response.choices[0].text)
    assert value["verdict"] in ("Correct", "Error")


async def test_the_demo_recipe_end_to_end(vllm_server: VLLMServer, tmp_path: Path) -> None:
    result = await arun(RECIPE, endpoints=[vllm_server.base_url], limit=3, runs_dir=tmp_path)
    report = result.report
    assert report.items == 3
    assert report.kept + report.rejected + report.failed == 3
    assert report.failed == 0, report.failure_reasons
    assert report.calls > 0 and report.completion_tokens > 0
    assert report.nodes["generate"].traces_out == 3 * 4  # 2 samples × 2 temperatures
    assert report.nodes["verify"].passed + report.nodes["verify"].failed >= 12
    assert len(result.dataset) == report.rows
    calls = [
        json.loads(line)
        for line in (result.run_dir / "trajectories.jsonl").read_text().splitlines()
        if '"type":"llm_call"' in line
    ]
    assert calls and all(c["response"]["endpoint"] == "cli0" for c in calls if "response" in c)
    assert all(c["request"]["model"] == DEFAULT_MODEL_NAME for c in calls)


async def test_server_killed_mid_run_fails_items_with_reasons_then_resume_finishes(
    prepared_model_dir: Path, vllm_server: VLLMServer, tmp_path: Path
) -> None:
    doomed = VLLMServer(
        ServerConfig(
            model=str(prepared_model_dir),
            served_model_name=DEFAULT_MODEL_NAME,
            device="cpu",
            kv_cache_gib=TEST_KV_CACHE_GIB,
            extra_args=["--enforce-eager"],  # skips torch.compile: ready sooner
        )
    )
    await asyncio.to_thread(doomed.start)
    await asyncio.to_thread(doomed.wait_ready)
    runs = tmp_path / "runs"

    def kill_after_first_item() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            found = list(runs.glob("*/trajectories.jsonl"))
            if found and b'"type":"item_end"' in found[0].read_bytes():
                break
            time.sleep(0.2)
        doomed.stop(timeout=5)

    killer = threading.Thread(target=kill_after_first_item, daemon=True)
    killer.start()
    overrides = ["llm.retry.max_attempts=2", "llm.retry.initial_backoff_s=0.1", "llm.retry.max_backoff_s=0.2"]
    try:
        first = await arun(
            RECIPE, endpoints=[doomed.base_url], limit=6, concurrency=1, runs_dir=runs, overrides=overrides
        )
    finally:
        killer.join(timeout=30)
        doomed.stop()
    assert first.report.items == 6
    assert first.report.failed >= 1
    reasons = " ".join(r for r, _ in first.report.failure_reasons)
    assert "connection" in reasons or "out of rotation" in reasons

    # Resume against a live server: the failed items are redone, finished ones are not.
    second = await arun(
        None,
        resume=first.run_id,
        retry_failed=True,
        endpoints=[vllm_server.base_url],
        runs_dir=runs,
    )
    report = read_report(second.run_dir)
    assert report["items"] == 6 and report["failed"] == 0
    assert report["sessions"] == 2
    assert len({row["item_id"] for row in second.dataset}) == len(second.dataset)
