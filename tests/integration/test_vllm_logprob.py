"""Integration: log-probability verifiers and the MICS search against a real vLLM server (prompt
log-probabilities from the server, both recipes end to end on the default model)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from medloom.agents.agent import ModelRef
from medloom.agents.context import AgentContext
from medloom.agents.templates import TemplateLibrary
from medloom.core.records import Item, Step
from medloom.llm.client import LLMClient
from medloom.runs.runner import arun
from medloom.serving import DEFAULT_MODEL_NAME, VLLMServer
from medloom.verifiers.likelihood import LikelihoodScorer, gold_continuation
from tests.helpers import REPO

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

ITEM = Item(
    id="q",
    index=0,
    question="A patient with thyrotoxicosis has palpitations. Which drug controls the symptoms fastest?",
    options={"A": "Propranolol", "B": "Levothyroxine", "C": "Radioactive iodine"},
    answer="A",
)


def events_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "trajectories.jsonl").read_text().splitlines()]


async def test_prompt_logprobs_from_the_server(vllm_server: VLLMServer, tmp_path: Path) -> None:
    model = ModelRef(alias="scorer", served=DEFAULT_MODEL_NAME, mode="completion")
    async with LLMClient.from_urls([vllm_server.base_url], cache_path=tmp_path / "cache.db") as client:
        scorer = LikelihoodScorer(client, model, TemplateLibrary())
        gold = gold_continuation(ITEM)
        told = [Step(index=1, text="Propranolol, a beta blocker, controls the adrenergic symptoms at once.")]
        alone, after = await scorer.prefixes(ITEM, told, gold, AgentContext(), [0, 1])
        # "Answer: A) Propranolol" is several real tokens with finite, negative log-probabilities
        assert alone.tokens >= 4 and after.tokens >= 4
        assert math.isfinite(alone.total) and alone.total < 0 and after.total < 0
        assert after.total != alone.total  # the steps condition the gold answer's probability
        again = await scorer.score(scorer.context(ITEM, told), gold, AgentContext())
        assert again == after  # served from the cache


async def test_logprob_recipe_end_to_end(vllm_server: VLLMServer, tmp_path: Path) -> None:
    result = await arun(
        REPO / "configs" / "mcq_logprob.yaml",
        endpoints=[vllm_server.base_url],
        limit=2,
        runs_dir=tmp_path,
        overrides=["nodes.generate.sampling.max_tokens=96", "nodes.generate.samples=2"],
    )
    assert (result.report.items, result.report.failed) == (2, 0), result.report.failure_reasons
    notes = [
        e["data"] for e in events_of(result.run_dir) if e["type"] == "note" and e["kind"] == "likelihood"
    ]
    assert notes and not [n for n in notes if "undecided" in n]  # the server gives prompt log-probs
    assert all(math.isfinite(n["shift"]) for n in notes if n["method"] == "belief_shift")


async def test_mics_recipe_end_to_end(vllm_server: VLLMServer, tmp_path: Path) -> None:
    result = await arun(
        REPO / "configs" / "mics.yaml",
        endpoints=[vllm_server.base_url],
        limit=2,
        runs_dir=tmp_path,
        overrides=[
            "nodes.search.max_depth=2",
            "nodes.search.mentor_sampling.max_tokens=96",
            "nodes.search.intern_sampling.max_tokens=96",
        ],
    )
    assert (result.report.items, result.report.failed) == (2, 0), result.report.failure_reasons
    depths = [
        e["data"] for e in events_of(result.run_dir) if e["type"] == "note" and e["kind"] == "mics_depth"
    ]
    assert depths and all(len(d["proposals"]) == 2 for d in depths)
    assert all(
        p["score"] in (0.0, 0.5, 1.0) and len(p["intern_answers"]) in (0, 2)
        for d in depths
        for p in d["proposals"]
    )
