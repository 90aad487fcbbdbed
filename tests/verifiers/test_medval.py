"""The MedVAL validator: reading the judge, the consistency arithmetic, and the check in a graph."""

from __future__ import annotations

import json

import pytest

from medloom.agents.agent import Agent, ModelRef
from medloom.core.errors import GraphError
from medloom.core.events import VerdictGiven
from medloom.core.records import Item, Trace
from medloom.core.registry import REGISTRY
from medloom.eval.injection import CORRECT
from medloom.eval.medval_injection import MEDVAL_KINDS, medval_cases
from medloom.eval.verifier_bench import score
from medloom.graphs.build import build_graph
from medloom.testing import FakeRequest
from medloom.verifiers.base import ModelCheck
from medloom.verifiers.medval import (
    MedvalAssessment,
    MedvalCheck,
    MedvalConsistency,
    MedvalError,
    Unreadable,
    consistency_score,
    parse_assessment,
    read_source,
)
from tests.graphs.test_engine import ends, make_spec, run, runtime
from tests.helpers import REPO

# -- the consistency score, by hand -----------------------------------------------------------


@pytest.mark.parametrize(
    ("clean", "perturbed", "attack", "expected"),
    [
        (1, 1, 1, 1.0),  # c = a = d = 0
        (1, 4, 4, 1.0),  # c = 0, a = d = 1
        (1, 3, 4, 1 - (0 + 1 / 9 + 1 / 9) / 6),  # a one level short of d: 0.963
        (2, 2, 2, 1 - (1 / 9 + 0 + 1 / 9) / 6),  # clean graded low risk: 0.963
        (1, 1, 4, 1 - (0 + 1 + 1) / 6),  # the attack went unseen: 0.667
        (3, 3, 1, 1 - (4 / 9 + 4 / 9 + 0) / 6),  # a risky clean output: 0.852
        (4, 1, 4, 1 - (1 + 1 + 4) / 6),  # grades reversed: the floor, 0
    ],
)
def test_consistency_score_by_hand(clean: int, perturbed: int, attack: int, expected: float) -> None:
    assert consistency_score(clean, perturbed, attack) == pytest.approx(expected)


def test_consistency_check_keeps_at_095_and_above() -> None:
    check = MedvalConsistency()
    item = Item(id="x", index=0)

    def graded(clean: int, perturbed: int, attack: int) -> Trace:
        meta = {"clean_grade": clean, "perturbed_grade": perturbed, "attack_level": attack}
        return Trace(id="t", item_id="x", node="grade", text="", meta=meta)

    kept = check.check(item, graded(1, 3, 4))
    assert kept.passed and kept.score == pytest.approx(0.963, abs=1e-3)
    rejected = check.check(item, graded(1, 4, 2))
    assert not rejected.passed and "consistency 0.852" in rejected.reason and "< 0.95" in rejected.reason
    missing = check.check(item, Trace(id="t", item_id="x", node="g", text=""))
    assert not missing.passed and "medval_grade" in missing.reason


# -- reading the judge --------------------------------------------------------------------------


def test_parse_labelled_lines_with_typed_errors() -> None:
    text = (
        "Risk level: 4\nErrors:\n"
        '- hallucination: "New 16 mm mass." | the input reports a 6 mm nodule\n'
        '- Missing claim: "No pleural effusion." | left out\n'
        '- overstating intensity: "Concerning for malignancy." | too sure\n'
        "###"
    )
    assert parse_assessment(text) == MedvalAssessment(
        risk_level=4,
        errors=[
            MedvalError(
                kind="hallucination",
                sentences=["New 16 mm mass."],
                explanation="the input reports a 6 mm nodule",
            ),
            MedvalError(kind="omission", sentences=["No pleural effusion."], explanation="left out"),
            MedvalError(
                kind="certainty_misalignment",
                sentences=["Concerning for malignancy."],
                explanation="too sure",
            ),
        ],
    )


def test_parse_json_and_ignore_the_next_example() -> None:
    text = '{"risk_level": "3", "errors": [{"type": "fabricated claim", "sentences": "It is cancer."}]}'
    parsed = parse_assessment(text)
    assert parsed.risk_level == 3 and parsed.errors[0].kind == "hallucination"
    assert parsed.errors[0].sentences == ["It is cancer."]
    # a base model that runs on into another example: only its first answer counts
    run_on = 'Risk level: 1\nErrors: none\nTask: x\nInput: y\nOutput: z\nRisk level: 4\n- omission: "a" | b'
    assert parse_assessment(run_on) == MedvalAssessment(risk_level=1)


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("Risk level: 7", "risk level 7 is outside 1-4"),
        ("Risk level: 0\nErrors: none", "risk level 0 is outside 1-4"),
        ("The output looks fine to me.", "no risk level"),
        ('{"risk_level": 9}', "risk level 9 is outside 1-4"),
    ],
)
def test_unreadable_replies_say_why(reply: str, why: str) -> None:
    with pytest.raises(Unreadable, match=why):
        parse_assessment(reply)


def test_sources_name_where_texts_are() -> None:
    item = Item(id="x", index=0, question="the input", data={"task": "report2impression"})
    trace = Trace(id="t", item_id="x", node="n", text="the output", meta={"clean_output": "clean"})
    assert [read_source(item, trace, s) for s in ("question", "trace", "data.task", "meta.clean_output")] == [
        "the input",
        "the output",
        "report2impression",
        "clean",
    ]
    with pytest.raises(TypeError, match=r"data\.KEY or meta\.KEY"):
        MedvalCheck(output="trace.steps")
    with pytest.raises(TypeError, match="safe_max"):
        MedvalCheck(safe_max=4)


# -- the check in any graph ---------------------------------------------------------------------

OUTPUTS = {
    "q1": "No acute process.",  # graded 2: low risk, passes
    "q2": "A new mass in the liver.",  # graded 3: fails with its errors
    "q3": "It is all fine.",  # the judge answers nonsense twice: undecided
}
GRADES = {
    "No acute process.": "Risk level: 2\nErrors: none",
    "A new mass in the liver.": (
        'Risk level: 3\nErrors:\n- hallucination: "A new mass in the liver." | not in the report'
    ),
    "It is all fine.": "Risk level: 12",
}


def script(req: FakeRequest) -> str:
    case = req.prompt_text.rsplit("###", 1)[-1]
    if req.node == "gen":
        item_id = next(k for k in OUTPUTS if f"Case {k}:" in case)
        return OUTPUTS[item_id]
    assert req.node == "safety", req.node
    output = case.split("Output:", 1)[1].strip().split("\n", 1)[0]
    return next(grade for text, grade in GRADES.items() if text in output)


GRAPH = {
    "gen": {"type": "generator", "models": ["m"], "template": "mcq_cot"},
    "safety": {"type": "verifier", "verifiers": [{"check": "medval", "model": "m"}]},
    "keep": {"type": "selector", "method": "all"},
}


def test_medval_is_a_registered_model_check() -> None:
    assert REGISTRY.get("check", "medval") is MedvalCheck and issubclass(MedvalCheck, ModelCheck)
    with pytest.raises(TypeError, match="await verify"):
        MedvalCheck().check(Item(id="x", index=0), Trace(id="t", item_id="x", node="n", text=""))


def test_a_model_check_without_a_model_is_a_config_error() -> None:
    nodes = {"safety": {"type": "verifier", "verifiers": [{"check": "medval"}]}}
    with pytest.raises(GraphError, match="asks a model"):
        build_graph(make_spec(nodes, []))
    plain = {"safety": {"type": "verifier", "verifiers": [{"check": "format", "model": "m"}]}}
    with pytest.raises(GraphError, match="asks no model"):
        build_graph(make_spec(plain, []))


async def test_medval_check_in_a_verifier_node(fake_llm) -> None:
    _fake, client = fake_llm(script)
    spec = make_spec(GRAPH, ["gen -> safety", {"from": "safety", "to": "keep", "when": "passed"}])
    rt = await runtime(spec, client)

    def item(n: int) -> Item:
        return Item(
            id=f"q{n}", index=n, question=f"Case q{n}: a chest radiograph report.", options={"A": "x"}
        )

    events = await run(rt, [item(1), item(2), item(3)])
    verdicts = {e.item_id: e.verdict for e in events if isinstance(e, VerdictGiven)}
    assert ends(events)["q1"].status == "kept"
    assert verdicts["q1"].passed and verdicts["q1"].score == pytest.approx(2 / 3, abs=1e-3)
    assert MedvalAssessment.model_validate(verdicts["q1"].detail) == MedvalAssessment(risk_level=2)

    assert ends(events)["q2"].status == "rejected"
    failed = verdicts["q2"]
    assert not failed.passed and not failed.undecided
    assert failed.reasons[0] == "risk level 3 (moderate risk)"
    detail = MedvalAssessment.model_validate(failed.detail)
    assert detail.errors == [
        MedvalError(
            kind="hallucination", sentences=["A new mass in the liver."], explanation="not in the report"
        )
    ]

    undecided = verdicts["q3"]
    assert ends(events)["q3"].status == "rejected"
    assert not undecided.passed and undecided.undecided and undecided.detail is None
    assert undecided.reason == "undecided: risk level 12 is outside 1-4"


# -- measuring it on injected errors ------------------------------------------------------------


def demo_rows() -> list[dict[str, object]]:
    path = REPO / "configs" / "data" / "medval_demo.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_injected_cases_differ_from_their_clean_output() -> None:
    cases = medval_cases(demo_rows())
    by_id = {c.id: c for c in cases}
    assert {c.kind for c in cases} == {CORRECT, *MEDVAL_KINDS}
    assert sum(c.kind == CORRECT for c in cases) == 12
    for c in cases:
        if c.is_error:
            assert c.trace.text != by_id[c.base].trace.text and by_id[c.base].kind == CORRECT
    halluc = by_id["medval-rep-01/hallucination"].trace.text
    assert halluc.endswith("New 2 cm liver lesion, suspicious for metastasis.")
    assert by_id["medval-rep-01/certainty_misalignment"].trace.text.startswith(
        "New left lower lobe opacity, definitely pneumonia."
    )
    assert "medval-qry-01/omission" not in by_id  # a one-sentence output has nothing to leave out


async def test_figures_of_a_validator_that_sees_only_hallucinations(fake_llm) -> None:
    cases = medval_cases(demo_rows())
    texts = {c.trace.text: c for c in cases}

    def validator(req: FakeRequest) -> str:
        output = req.prompt_text.rsplit("Output:", 1)[1].strip().split("\n", 1)[0]
        case = texts[output]
        if case.kind == "hallucination":
            return 'Risk level: 4\n- hallucination: "x" | fabricated'
        return "Risk level: 1\nErrors: none" if case.id != "medval-med-01/clean" else "Risk level: 3"

    _fake, client = fake_llm(validator)
    check = MedvalCheck()
    ref = ModelRef(alias="j", served="fake-model", mode="completion")
    check.bind(Agent("medval", ref, check.default_template, client))
    passed = {c.id: (await check.verify(c.item, c.trace)).passed for c in cases}
    figures = score("medval", "medval", cases, passed, scope=MEDVAL_KINDS)
    assert figures.kinds["hallucination"].recall == 1.0 and figures.kinds["omission"].recall == 0.0
    # one clean output rejected (level 3): a false rejection for every kind made from it
    assert figures.false_rejections == 1 and figures.kinds["hallucination"].precision == round(12 / 13, 4)
    assert figures.recall == round(12 / 29, 4)
