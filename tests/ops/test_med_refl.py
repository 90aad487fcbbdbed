"""The med_refl recipe on scripted replies: locate the first wrong step, reflect from the prefix, and
record both pair kinds, which the dpo export reads (and the prm export labels)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from medloom.core.events import Note, TraceCreated, VerdictGiven
from medloom.ops.med_refl import parse_location, parse_reflection
from medloom.runs.exports import training_dataset
from medloom.runs.runner import run as run_recipe
from medloom.testing import FakeLLM, FakeRequest
from tests.graphs.test_engine import OPTIONS, RIGHT, WRONG, ends, item, run
from tests.ops.recipes import CONFIGS, recipe_runtime

WRONG_2 = "Step 1: The thyroid is overactive.\nStep 2: Radioactive iodine works at once.\nAnswer: C"
FIX = (
    " Levothyroxine adds thyroid hormone.\nCorrected step 2: A beta blocker controls the symptoms.\nAnswer: A"
)
MISS = " It is slow.\nCorrected step 2: Levothyroxine is still the best choice.\nAnswer: B"


class ReflScript:
    """Generator (2 wrong of 4), locator (step 2 by majority) and reflector (2 of 6 reach gold)."""

    def __init__(self) -> None:
        self.reflect_prompts: list[str] = []

    def __call__(self, req: FakeRequest) -> list[str]:
        # in process, the fake sees which node calls: editing a prompt cannot reroute a reply
        if req.node == "reason":
            return [t.removeprefix("Step 1:") for t in (WRONG, RIGHT, WRONG_2, RIGHT)]
        if req.node == "locate":
            return [" 2\nReason: Levothyroxine worsens thyrotoxicosis.", " 2", " 1\nReason: no.", " none"]
        if req.node == "reflect":
            self.reflect_prompts.append(req.prompt_text.rsplit("###", 1)[-1])
            return [FIX, MISS, " garbled", FIX.replace("beta blocker", "beta-blocker"), MISS, MISS]
        raise AssertionError(f"unexpected call from node {req.node!r} (agent {req.agent!r})")


def test_parsers() -> None:
    assert parse_location("First wrong step: 3\nReason: dose.", 4) == (3, "dose.")
    assert parse_location(" Step 2", 4) == (2, "")
    assert parse_location(" 9", 4) == (None, "")  # out of range
    prefix = parse_reflection(f"Reflection:{FIX}", [], 2, OPTIONS)
    assert (
        prefix is not None
        and prefix.answer == "A"
        and prefix.reflection == "Levothyroxine adds thyroid hormone."
    )
    assert [s.index for s in prefix.steps] == [
        2
    ] and prefix.corrected == "A beta blocker controls the symptoms."
    assert parse_reflection("Reflection: no correction here.\nAnswer: A", [], 2, OPTIONS) is None


async def test_recipe_records_mid_and_post_reasoning_pairs(fake_llm) -> None:
    script = ReflScript()
    _server, client = fake_llm(script)
    rt = await recipe_runtime("med_refl", client, "models.gen.model=fake-model")
    events = await run(rt, [item(1)])
    end = ends(events)["q1"]
    assert end.status == "kept", end.reason

    located = [e for e in events if isinstance(e, VerdictGiven) and e.node == "locate"]
    assert {e.trace_id for e in located} == {"q1/reason/gen/t0.7/0", "q1/reason/gen/t0.7/2"}
    assert all(e.verdict.step_flags == {2: "Levothyroxine worsens thyrotoxicosis."} for e in located)
    assert "locator (2/4 votes)" in located[0].verdict.reason

    # the reflector sees the prefix and the wrong step, not the rest of the solution
    assert "Step 2: Levothyroxine treats thyroid disease.\nReflection:" in script.reflect_prompts[0]

    pairs = [e.data for e in events if isinstance(e, Note) and e.kind == "preference_pair"]
    assert Counter(p["kind"] for p in pairs) == {"mid_reasoning": 4, "post_reasoning": 4}  # 2 wrong x 2 fixes
    mid = next(p for p in pairs if p["kind"] == "mid_reasoning" and p["rejected_trace_id"].endswith("/0"))
    assert (
        mid["chosen"] == "Step 1: The thyroid is overactive.\nStep 2: A beta blocker controls the symptoms."
    )
    assert (
        mid["rejected"] == "Step 1: The thyroid is overactive.\nStep 2: Levothyroxine treats thyroid disease."
    )
    assert mid["value"] == 2 / 6
    post = next(p for p in pairs if p["kind"] == "post_reasoning" and p["rejected_trace_id"].endswith("/0"))
    assert post["rejected"] == WRONG
    assert post["chosen"].startswith(WRONG + "\nWait, step 2 is wrong. Levothyroxine adds thyroid hormone.")
    assert post["chosen"].endswith("Step 2: A beta blocker controls the symptoms.\nAnswer: A")

    reflected = [e.trace for e in events if isinstance(e, TraceCreated) and e.node == "reflect"]
    assert sorted(r["trace_id"] for r in end.rows) == sorted(t.id for t in reflected)
    assert all(r["predicted"] == "A" and r["first_error_step"] == 2 for r in end.rows)
    checked = {
        e.trace_id for e in events if isinstance(e, VerdictGiven) and e.verdict.verifier == "refl_gold"
    }
    assert checked == {t.id for t in reflected}


async def test_item_without_a_wrong_trace_is_rejected_with_the_reason(fake_llm) -> None:
    _server, client = fake_llm(lambda req: RIGHT.removeprefix("Step 1:"))
    rt = await recipe_runtime("med_refl", client, "models.gen.model=fake-model")
    end = ends(await run(rt, [item(1)]))["q1"]
    assert (end.status, end.node, end.reason) == ("rejected", "reflect", "no wrong trace to reflect on")


def test_run_exports_both_pair_kinds_as_dpo_and_locations_as_prm(tmp_path: Path) -> None:
    data = tmp_path / "items.jsonl"
    question = item(1).question
    rows = [{"id": f"q{i}", "question": question, "options": OPTIONS, "answer": "A"} for i in (1, 2)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fake = FakeLLM(ReflScript())  # in process: the run's client gets the fake's transport
    result = run_recipe(
        CONFIGS / "med_refl.yaml",
        endpoints=[fake.base_url],
        runs_dir=tmp_path / "runs",
        overrides=[f"dataset.path={data}"],
        transport=fake.transport,
    )
    assert result.report.kept == 2
    # the op declares its note kind: the report counts the pairs by kind
    assert result.report.note_facets["reflect"]["preference_pair"] == {
        "mid_reasoning": 8,
        "post_reasoning": 8,
    }
    dpo = training_dataset(result.run_dir, "dpo")
    assert Counter(dpo["pair_kind"]) == {"mid_reasoning": 8, "post_reasoning": 8}
    assert all(r["chosen"] != r["rejected"] and r["trace_id"] and r["rejected_trace_id"] for r in dpo)
    prm = {r["trace_id"]: r for r in training_dataset(result.run_dir, "prm")}
    assert prm["q1/reason/gen/t0.7/0"]["labels"] == [True, False]  # step 2 located as the first error
    assert prm["q1/reason/gen/t0.7/2"]["labels"] == [True, False]
    assert prm["q1/reason/gen/t0.7/1"]["labels"] == [True, True]  # its reflections repeat these steps
