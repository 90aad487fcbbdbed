"""configs/consultation.yaml through the real CLI on scripted replies: a full consultation graded
criterion by criterion (total checked by hand), the turn bound, a simulator that answers from
the record it is shown (and is redacted when it names the hidden diagnosis), an ungradable
criterion, and chat mode with the rubric total choosing between two consultations."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from medloom.agents.consultation import conclusion_of, leaks, turn_text
from medloom.core.notes import note_schema
from medloom.testing.fake import FakeOpenAIServer, FakeRequest
from medloom.verifiers.rubric import parse_judgement, parse_rubric
from tests.helpers import REPO, medloom_cli, only_run, read_report

RECIPE = str(REPO / "configs" / "consultation.yaml")

DOCTOR_SCRIPT = {
    # case-001 (cough and fever): two questions, then a conclusion.
    "cough": [
        "How long have you had the cough, and do you bring anything up?",
        "Are you allergic to any medicines?",
        "Conclusion: Right lower lobe pneumonia; chest X-ray and bloods; a non-penicillin antibiotic.",
    ],
    # case-002 (chest pain): keeps asking, never concludes.
    "chest": [
        "Where does the pain spread to?",
        "What do you think is going on?",
        "Do you smoke?",
        "Any family history of heart disease?",
    ],
}

RUBRICS = {
    "community-acquired pneumonia": (
        " 5 | Asks how long the cough has lasted and about phlegm.\n"
        "- [history] 4 | Asks about allergies to medicines.\n"
        "- [differential] 6 | Names pneumonia as the most likely diagnosis.\n"
        "- [tests] 4 | Orders a chest X-ray.\n"
        "- [safety] 5 | Checks the oxygen level or says when to seek urgent care.\n"
        "- [safety] -8 | Prescribes penicillin despite the allergy.\n"
        "- [communication] 2 | Explains the plan in plain words.\n"
        "This line is not a criterion."
    ),
    "inferior ST-elevation myocardial infarction": (
        " 5 | Asks where the chest pain spreads.\n"
        "- [tests] 6 | Orders an ECG and a troponin.\n"
        "- [communication] 2 | Reassures the patient and explains the next steps."
    ),
}

JUDGEMENTS = {
    # criterion → the words the consultation must contain for it to be met (None: unreadable reply)
    "Asks how long the cough has lasted and about phlegm.": "How long have you had the cough",
    "Asks about allergies to medicines.": "allergic",
    "Names pneumonia as the most likely diagnosis.": "Conclusion: Right lower lobe pneumonia",
    "Orders a chest X-ray.": "X-ray",
    "Checks the oxygen level or says when to seek urgent care.": "oxygen",
    "Prescribes penicillin despite the allergy.": "prescribe penicillin",
    "Explains the plan in plain words.": "in plain words",
    "Asks where the chest pain spreads.": "spread",
    "Orders an ECG and a troponin.": "ECG",
    "Reassures the patient and explains the next steps.": None,
}


class Clinic:
    """Plays doctor, patient, rubric generator and grader, routed by each template's shape."""

    def __init__(self) -> None:
        self.patient_prompts: list[str] = []

    @staticmethod
    def role(req: FakeRequest) -> str:
        if req.kind == "chat":
            system = str(req.messages[0]["content"])
            for role, marker in (
                ("doctor", "You are a doctor"),
                ("patient", "You play a patient"),
                ("rubric", "writing the scoring rubric"),
                ("grader", "grading a simulated"),
            ):
                if marker in system:
                    return role
            raise AssertionError(system)
        last = req.prompt_text.rstrip().splitlines()[-1]
        return {"Doctor:": "doctor", "Patient:": "patient", "- [history]": "rubric", "Judgement:": "grader"}[
            last
        ]

    @staticmethod
    def case(req: FakeRequest) -> str:
        if req.kind == "chat":
            return req.prompt_text
        return req.prompt_text.rsplit("###", 1)[-1]

    def __call__(self, req: FakeRequest) -> str:
        role, case = self.role(req), self.case(req)
        if role == "doctor":
            asked = (
                sum(1 for m in req.messages if m["role"] == "assistant")
                if req.kind == "chat"
                else case.count("\nDoctor:") - 1
            )
            script = DOCTOR_SCRIPT["cough" if "cough" in case else "chest"]
            line = script[min(asked, len(script) - 1)]
            if req.kind == "chat" and req.body.get("seed"):  # the second sample concludes at once
                line = "Conclusion: A chest infection; rest."
            return f" {line}"
        if role == "patient":
            self.patient_prompts.append(case)
            question = (
                str(req.messages[-1]["content"]) if req.kind == "chat" else case.rstrip().splitlines()[-2]
            )
            if "allergic" in question:  # answered from the record the simulator was shown
                allergy = re.search(r"- allergies: (.+)", case)
                return f" {allergy.group(1).capitalize() if allergy else 'I am not sure'}."
            if "going on" in question:
                return " I'm sure it is an inferior ST-elevation myocardial infarction."
            return " For three days, with yellow-green phlegm." if "cough" in question else " I'm not sure."
        if role == "rubric":
            diagnosis = re.search(r"Final diagnosis: (.+)", case)
            assert diagnosis
            text = RUBRICS[diagnosis.group(1).strip()]
            return text if req.kind == "completion" else "- [history]" + text
        consultation, criterion = re.split(r"\nCriterion(?: \([^)]*\))?: ", case, maxsplit=1)
        needed = JUDGEMENTS[criterion.splitlines()[0].strip()]
        if needed is None:
            reply = "The The The The"
        else:
            reply = "met\nReason: it is there." if needed in consultation else "not met\nReason: absent."
        return f" {reply}" if req.kind == "completion" else f"Judgement: {reply}"


def run_recipe(tmp_path: Path, clinic: Clinic, *args: str) -> tuple[Path, dict[str, Any]]:
    with FakeOpenAIServer(clinic) as server:
        result = medloom_cli(
            "run", RECIPE, "--endpoint", server.base_url, "--runs-dir", str(tmp_path), "-q",
            "--set", "models.*.model=fake-model", *args,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = only_run(tmp_path)
    return run_dir, read_report(run_dir)


def events_of(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "trajectories.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("type") != "header"]


def rows_of(run_dir: Path) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in (run_dir / "data.jsonl").read_text().splitlines()]
    return {r["item_id"]: r for r in rows}


def test_consultations_are_graded_criterion_by_criterion(tmp_path: Path) -> None:
    clinic = Clinic()
    run_dir, report = run_recipe(
        tmp_path, clinic, "--limit", "2", "--set", "nodes.consult.params.max_turns=3"
    )
    assert (report["items"], report["kept"]) == (2, 2)
    rows = rows_of(run_dir)
    events = events_of(run_dir)

    # case-001: a full consultation that concludes on the doctor's third turn.
    full = rows["case-001"]
    assert [(t["speaker"], t["turn"]) for t in full["transcript"]] == [
        ("patient", 1), ("doctor", 2), ("patient", 3), ("doctor", 4), ("patient", 5), ("doctor", 6),
    ]  # fmt: skip
    assert full["transcript"][0]["text"] == "I've had a bad cough and a fever for three days."
    # The simulator answered the allergy question from the record it was shown.
    assert full["transcript"][4]["text"] == "Penicillin gives him a rash."
    assert full["conclusion"].startswith("Right lower lobe pneumonia")
    assert full["predicted"] == full["conclusion"] and full["stop_reason"] == "conclusion"
    # The generator's last criterion is the prompt's worked example word for word: dropped.
    assert [c["id"] for c in full["rubric"]] == [f"c{i}" for i in range(1, 7)]
    assert [c["weight"] for c in full["rubric"]] == [5, 4, 6, 4, 5, -8]
    met = {c["id"]: c["met"] for c in full["criteria_scores"]}
    assert met == {"c1": True, "c2": True, "c3": True, "c4": True, "c5": False, "c6": False}
    # By hand: met 5 + 4 + 6 + 4 = 19 points of 5 + 4 + 6 + 4 + 5 = 24 positive points.
    assert full["total"] == pytest.approx(19 / 24) and full["score"] == pytest.approx(19 / 24)
    assert full["undecided"] == 0
    (verdict,) = full["verdicts"]
    assert verdict["passed"] and verdict["node"] == "grade"

    # case-002: the doctor never concludes; the bound stops the consultation after 3 doctor turns.
    bound = rows["case-002"]
    assert bound["stop_reason"] == "max_turns" and bound["conclusion"] is None
    assert [t["speaker"] for t in bound["transcript"]] == ["patient", "doctor"] * 3 + ["patient"]
    # The simulator named the hidden diagnosis: the reply is replaced, and the original kept in the note.
    said = bound["transcript"][4]
    assert said["redacted"] and "myocardial" not in said["text"]
    (redacted,) = [
        e for e in events if e["type"] == "note" and e["kind"] == "consult_turn" and e["data"]["redacted"]
    ]
    assert "myocardial infarction" in redacted["data"]["original"]
    # The simulator never saw the diagnosis.
    assert clinic.patient_prompts and not any("myocardial" in p for p in clinic.patient_prompts)
    assert not any("pneumonia" in p for p in clinic.patient_prompts)
    # The ungradable criterion is undecided: reported, not met, no points; 5 of 13 points.
    scores = {c["id"]: c for c in bound["criteria_scores"]}
    assert scores["c3"]["met"] is None and scores["c3"]["points"] == 0
    assert scores["c3"]["reason"].startswith("undecided")
    assert bound["undecided"] == 1 and bound["total"] == pytest.approx(5 / 13)
    (verdict,) = bound["verdicts"]
    assert not verdict["passed"] and "1 undecided (not counted as met): c3" in verdict["reason"]

    # Every turn of both consultations is in the trajectory, and the rubric's stray line is reported.
    turns = [e for e in events if e["type"] == "note" and e["kind"] == "consult_turn"]
    assert len(turns) == len(full["transcript"]) + len(bound["transcript"])
    rubric_notes = {e["item_id"]: e["data"] for e in events if e["type"] == "note" and e["kind"] == "rubric"}
    # The viewer's labels for the notes say what happened.
    labels = {
        (e["kind"], e["item_id"], e["data"].get("turn")): "".join(
            text
            for text, _ in note_schema(e["kind"]).view(e["data"]).label  # type: ignore[union-attr]
        )
        for e in events
        if e["type"] == "note"
    }
    assert labels[("consult_turn", "case-002", 5)].endswith("(redacted)")
    assert labels[("consultation", "case-002", None)] == "consultation max_turns after 3 turns"
    assert labels[("rubric_grade", "case-002", None)] == "rubric total 0.385 (1 undecided)"
    assert labels[("rubric", "case-001", None)] == "rubric 6 criteria (generated)"
    assert rubric_notes["case-001"]["skipped"] == [
        "copied from the prompt: - [communication] 2 | Explains the plan in plain words.",
        "This line is not a criterion.",
    ]


def test_chat_mode_keeps_the_best_graded_of_two_consultations(tmp_path: Path) -> None:
    run_dir, report = run_recipe(
        tmp_path, Clinic(), "--limit", "1", "--mode", "chat", "--set", "nodes.consult.params.samples=2"
    )
    assert report["kept"] == 1
    events = events_of(run_dir)
    (selection,) = [e for e in events if e["type"] == "selection"]
    assert len(selection["candidates"]) == 2
    grades = {
        e["trace_id"]: e["data"]["total"]
        for e in events
        if e["type"] == "note" and e["kind"] == "rubric_grade"
    }
    (row,) = rows_of(run_dir).values()
    # The full consultation beats the one that concluded at once. The chat prompt has no worked
    # example, so nothing is dropped as copied: 19 of 26 points.
    assert grades == {"case-001/consult/0": pytest.approx(19 / 26), "case-001/consult/1": 0.0}
    assert selection["selected"] == [row["trace_id"]] == ["case-001/consult/0"]
    assert row["total"] == pytest.approx(19 / 26) and len(row["transcript"]) == 6


def test_turn_and_rubric_parsing() -> None:
    assert turn_text("Doctor: Any fever?\nPatient: no") == "Any fever?"
    assert turn_text(" **Patient:** It hurts here.") == "It hurts here."
    assert (
        conclusion_of("Let me think.\nConclusion: Appendicitis; ultrasound.") == "Appendicitis; ultrasound."
    )
    assert conclusion_of("Any fever?") is None
    assert leaks("I think it is Acute Appendicitis.", ["acute appendicitis"], "pain on the right") == [
        "acute appendicitis"
    ]
    assert leaks("My appendix was removed.", ["acute appendicitis"], "") == []
    parsed = parse_rubric(
        "- [History taking] 3 | Asks about fever and chills.\n"
        "2. [safety] (weight -20) Gives aspirin to a child with fever.\n"
        "- [history] 0 | Weightless criterion is dropped.\n"
        "- [history] 3 | asks about FEVER and chills\n"
        "- [cardiology] 4 | Unknown categories are skipped entirely.\n"
    )
    assert [(c.category, c.weight) for c in parsed.criteria] == [("history", 3), ("safety", -10)]
    assert len(parsed.skipped) == 3
    copied = parse_rubric(
        "- [tests] 4 | Orders a urine culture.", prompt="- [tests] 4 | Orders a urine culture."
    )
    assert copied.criteria == [] and copied.skipped[0].startswith("copied from the prompt")
    assert parse_judgement("Judgement: not met\nReason: no") == (False, "no")
    assert parse_judgement("met") == (True, "")
    assert parse_judgement("Maybe.") == (None, "")


async def test_the_rubric_check_grades_inside_a_verifier_node(fake_llm) -> None:  # type: ignore[no-untyped-def]
    """``check: rubric`` gives the same per-criterion verdict in an ordinary verifier node."""
    from medloom.core.events import VerdictGiven
    from medloom.core.records import Item
    from tests.graphs.test_engine import ends, run
    from tests.ops.recipes import CONFIGS, recipe_runtime

    row = json.loads((CONFIGS / "data" / "demo_cases.jsonl").read_text().splitlines()[0])
    case = Item(id=row["id"], index=0, question=row["complaint"], answer=row["diagnosis"], data=row)
    _fake, client = fake_llm(Clinic())
    grade = "{type: verifier, verifiers: [{check: rubric, model: examiner, params: {pass_score: 0.8}}]}"
    rt = await recipe_runtime("consultation", client, "models.*.model=fake-model", f"nodes.grade={grade}")
    events = await run(rt, [case])
    assert ends(events)["case-001"].status == "kept"
    (given,) = [e for e in events if isinstance(e, VerdictGiven)]
    verdict = given.verdict
    assert verdict.node == "grade" and verdict.score == pytest.approx(19 / 24)
    assert not verdict.passed and not verdict.undecided  # 0.79 < pass_score 0.8
    assert [(c.id, c.met, c.points) for c in verdict.criteria][:2] == [("c1", True, 5.0), ("c2", True, 4.0)]
