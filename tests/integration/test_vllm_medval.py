"""Integration: the MedVAL validator against a real vLLM server (one grade, a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medloom.agents.agent import Agent, ModelRef, Sampling
from medloom.core.records import Item, Trace
from medloom.llm.client import LLMClient
from medloom.serving import DEFAULT_MODEL_NAME, VLLMServer
from medloom.verifiers.medval import MedvalAssessment, MedvalCheck

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

ITEM = Item(
    id="r",
    index=0,
    question="Findings: Chest radiograph. Normal heart size. No effusion or pneumothorax.",
    data={"task": "report2impression"},
)


async def test_medval_grades_or_says_why_it_cannot(vllm_server: VLLMServer, tmp_path: Path) -> None:
    trace = Trace(id="t", item_id="r", node="n", text="Large right pleural effusion.")
    model = ModelRef(alias="judge", served=DEFAULT_MODEL_NAME, mode="completion")
    async with LLMClient.from_urls([vllm_server.base_url], cache_path=tmp_path / "cache.db") as client:
        check = MedvalCheck(parse_retries=0)
        check.bind(Agent("medval", model, check.default_template, client, sampling=Sampling(max_tokens=48)))
        verdict = await check.verify(ITEM, trace)
    if verdict.undecided:  # a 270M base model may write no level: then the verdict says so, failing
        assert not verdict.passed and verdict.detail is None
        assert verdict.reason.startswith("undecided: ")
    else:
        grade = MedvalAssessment.model_validate(verdict.detail)
        assert verdict.passed == (grade.risk_level <= 2)
        assert verdict.reasons[0].startswith(f"risk level {grade.risk_level} (")
