"""Integration: a one-question consultation and its one-criterion rubric grade against a real
vLLM server (three short calls)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medloom.agents.agent import Agent, ModelRef, Sampling
from medloom.agents.consultation import ConsultationRunner
from medloom.agents.context import AgentContext
from medloom.core.records import Item
from medloom.llm.client import LLMClient
from medloom.serving import DEFAULT_MODEL_NAME, VLLMServer
from medloom.verifiers.rubric import RubricCheck, rubric_total

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

CASES = Path(__file__).resolve().parents[2] / "configs" / "data" / "demo_cases.jsonl"
RUBRIC = [{"id": "c1", "category": "history", "weight": 5, "text": "Asks how long the cough has lasted."}]


async def test_a_real_consultation_is_recorded_and_graded(vllm_server: VLLMServer, tmp_path: Path) -> None:
    row = json.loads(CASES.read_text().splitlines()[0])
    case = Item(id=row["id"], index=0, question=row["complaint"], data={**row, "rubric": RUBRIC})
    model = ModelRef(alias="m", served=DEFAULT_MODEL_NAME, mode="completion")
    async with LLMClient.from_urls([vllm_server.base_url], cache_path=tmp_path / "cache.db") as client:
        short = Sampling(max_tokens=32)
        doctor = Agent("doctor", model, "consult_doctor", client, sampling=short)
        patient = Agent("patient", model, "consult_patient", client, sampling=short)
        trace = await ConsultationRunner(doctor, patient, max_turns=1).run(
            case, AgentContext(item_id=case.id)
        )
        check = RubricCheck()
        check.bind(Agent("grader", model, check.default_template, client, sampling=Sampling(max_tokens=16)))
        verdict = await check.verify(case, trace)
    turns = trace.meta["transcript"]
    assert turns[0] == {"turn": 1, "speaker": "patient", "text": row["complaint"], "redacted": False}
    assert [t["speaker"] for t in turns] == ["patient", "doctor", "patient", "doctor", "patient"][
        : len(turns)
    ]
    assert trace.meta["stop_reason"] in ("conclusion", "max_turns", "empty")
    assert (trace.answer is not None) == (trace.meta["stop_reason"] == "conclusion")
    assert [c.id for c in verdict.criteria] == ["c1"]
    assert verdict.score == rubric_total(verdict.criteria).total
    for c in verdict.criteria:  # a 270M base model may write no judgement: undecided, never met
        assert c.points == (c.weight if c.met else 0.0)
        assert c.met is not None or c.reason.startswith("undecided")
