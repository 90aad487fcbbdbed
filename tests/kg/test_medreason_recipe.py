"""configs/medreason.yaml end to end through the CLI against a scripted fake endpoint."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from medloom.kg import load_kg
from medloom.kg.linking import parse_entity_lists, parse_numbers
from medloom.kg.paths import KGPath, hop_is_edge
from medloom.testing import FakeRequest
from medloom.testing.fake import FakeOpenAIServer
from tests.helpers import REPO, medloom_cli, only_run, read_report

RECIPE = REPO / "configs" / "medreason.yaml"
QUESTIONS = [json.loads(line) for line in (REPO / "configs/data/kg_demo_mcq.jsonl").read_text().splitlines()]
# What the extractor "sees" in each question: one misspelt name (fuzzy link), one exact.
EXTRACTED = {
    "kgq-000": "type 2 diabetis mellitus; DPP4",
    "kgq-001": "asthma",
    "kgq-002": "nicotine dependence; CHRNA4",
}


class MedReasonOracle:
    """Plays extractor, pruner, CoT writer and solver; the solver misreads ``misread`` items."""

    def __init__(self, misread: set[str]):
        self.misread = misread

    def _question(self, prompt: str) -> dict:  # type: ignore[type-arg]
        for q in QUESTIONS:
            if q["question"] in prompt:
                return q
        raise AssertionError(prompt[-300:])

    def __call__(self, req: FakeRequest) -> str:
        prompt = req.prompt_text
        tail = prompt.rstrip().rsplit("\n", 1)[-1]
        if tail == "Question entities:":
            q = self._question(prompt)
            return f" {EXTRACTED[q['id']]}\nAnswer entities: {q['options'][q['answer']]}"
        if tail == "Keep:":
            return " 1, 2"
        if tail == "Step 1:":
            q = self._question(prompt)
            facts = re.findall(r"^- (.+)$", prompt.rsplit("Facts:\n", 1)[1], re.M)
            lines = [facts[0]] + [f"Step {i}: {f}" for i, f in enumerate(facts[1:], start=2)]
            return " " + "\n".join(lines) + f"\nAnswer: {q['answer']}"
        if tail == "Answer:":  # the solver, from the reasoning alone
            block = prompt.rsplit("Options:\n", 1)[1]
            options = dict(re.findall(r"^([A-D])\) (.+)$", block, re.M))
            reasoning = block.split("Reasoning:\n", 1)[1]
            q = next(q for q in QUESTIONS if q["options"] == options)
            if q["id"] in self.misread:
                return " " + next(k for k in options if k != q["answer"])
            named = [k for k, v in options.items() if v in reasoning]
            return f" {named[-1]}" if named else " none"
        raise AssertionError(f"unexpected prompt ending {tail!r}")


def test_parsers_for_entity_lists_and_kept_paths() -> None:
    q, a = parse_entity_lists("Question entities: asthma; DPP4, liver\nAnswer entities: none\n")
    assert (q, a) == (["asthma", "DPP4", "liver"], [])
    assert parse_numbers("Keep: 3, 1, 3 and 9", 4) == [3, 1]


@pytest.mark.slow
def test_rows_carry_kg_paths_and_only_cots_a_solver_can_follow(tmp_path: Path) -> None:
    with FakeOpenAIServer(MedReasonOracle(misread={"kgq-002"})) as server:
        result = medloom_cli(
            "run", str(RECIPE), "--endpoint", server.base_url, "--runs-dir", str(tmp_path), "--limit", "3"
        )
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = only_run(tmp_path)
    report = read_report(run_dir)
    assert (report["items"], report["kept"], report["rejected"]) == (3, 2, 1), report["rejection_reasons"]
    assert report["rejection_reasons"][0][0] == "solve: reasoning does not lead to gold"
    rows = {r["item_id"]: r for r in map(json.loads, (run_dir / "data.jsonl").read_text().splitlines())}
    kg = load_kg().kg
    for row in rows.values():
        paths = [KGPath.model_validate(p) for p in row["kg_paths"]]
        assert 1 <= len(paths) <= 3 and all(hop_is_edge(kg, h) for p in paths for h in p.hops)
        answer_names = {e["name"] for e in row["answer_entities"]}
        assert row["answer_text"] in answer_names
        assert all(p.end.name in answer_names for p in paths)
        assert row["cot_solver_answer"] == row["answer"]
    diabetes = rows["kgq-000"]["question_entities"]
    fuzzy = next(e for e in diabetes if e["mention"] == "type 2 diabetis mellitus")
    assert fuzzy["name"] == "type 2 diabetes mellitus" and fuzzy["how"] == "fuzzy" and fuzzy["score"] < 100
