"""`medloom eval --metric recall` and `--attack medfuzz` through the real CLI, with scripted replies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medloom.eval.significance import paired_permutation_test
from medloom.ops.medfuzz_attack import clean_rewrite
from medloom.testing.fake import FakeOpenAIServer, FakeRequest
from tests.helpers import medloom_cli

# -- reasoning recall -------------------------------------------------------------------------

CASES = [
    {
        "pmcid": "PMC-1",
        "case_prompt": "A man wakes with a hot swollen big toe after a night of beer.",
        "final_diagnosis": "Acute gout",
        "diagnostic_reasoning": "1. The first toe joint is typical of gout.\n2. Beer is a trigger.\n"
        "3. Septic arthritis is less likely without fever.",
    },
    {
        "pmcid": "PMC-2",
        "case_prompt": "A woman has palpitations, weight loss and a smooth goitre.",
        "final_diagnosis": "Graves disease",
        "diagnostic_reasoning": [
            "Weight loss and palpitations suggest thyrotoxicosis.",
            "A smooth goitre fits Graves.",
        ],
    },
]

STATEMENT_REPLIES = {
    "The first toe joint is typical of gout.": " yes",
    "Beer is a trigger.": " no",
    "Septic arthritis is less likely without fever.": " perhaps, hard to say",  # undecided
    "Weight loss and palpitations suggest thyrotoxicosis.": " yes",
    "A smooth goitre fits Graves.": " yes",
}


def _recall_replies(req: FakeRequest) -> str:
    prompt = req.prompt_text.rstrip()
    if prompt.endswith("Step 1:"):  # the diagnose solver
        if "big toe" in prompt.rsplit("Case:", 1)[-1]:
            return " The big toe is hot after beer.\nAnswer: Gout"
        return " Palpitations with weight loss.\nAnswer: Toxic nodule"
    if prompt.endswith("Match:"):
        predicted = prompt.rsplit("Predicted diagnosis:", 1)[-1]
        return " yes" if "Gout" in predicted else " no"
    if prompt.endswith("Covered:"):
        statement = prompt.rsplit("Statement:", 1)[-1].split("\n", 1)[0].strip()
        return STATEMENT_REPLIES[statement]
    raise AssertionError(f"unexpected prompt: {prompt[-200:]}")


def test_recall_counts_covered_and_undecided_statements(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps(c) + "\n" for c in CASES))
    out = tmp_path / "out"
    with FakeOpenAIServer(_recall_replies) as server:
        result = medloom_cli(
            "eval",
            "configs/eval/diagnose.yaml",
            "--metric",
            "recall",
            "--dataset",
            str(cases),
            "--endpoint",
            server.base_url,
            "--out",
            str(out),
            "--no-cache",
            "--json",
        )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    (solver,) = payload["solvers"]
    # Case 1: diagnosis matches, 1 of 3 covered, 1 undecided; case 2: no match, 2 of 2 covered.
    assert (solver["n"], solver["correct"], solver["accuracy"]) == (2, 1, 0.5)
    assert (solver["statements"], solver["covered"], solver["undecided"]) == (5, 3, 1)
    assert solver["recall"] == pytest.approx((1 / 3 + 2 / 2) / 2)
    assert solver["pooled_recall"] == pytest.approx(3 / 5)

    scores = {c["case_id"]: c for c in map(json.loads, (out / "recall_cases.jsonl").read_text().splitlines())}
    gout, graves = scores["PMC-1"], scores["PMC-2"]
    assert (gout["predicted"], gout["match"], gout["covered"], gout["undecided"]) == ("Gout", "yes", 1, 1)
    assert (graves["predicted"], graves["match"], graves["covered"]) == ("Toxic nodule", "no", 2)
    undecided = [j for j in gout["judgements"] if j["decision"] == "undecided"]
    assert [j["subject"] for j in undecided] == ["Septic arthritis is less likely without fever."]

    # Every judgement is in the judge run's trajectory, beside its LLM call.
    events = [json.loads(line) for line in (Path(solver["judge_run_dir"]) / "trajectories.jsonl").open()]
    notes = [e for e in events if e.get("type") == "note" and e["kind"] == "recall_judgement"]
    calls = [e for e in events if e.get("type") == "llm_call"]
    assert len(notes) == len(calls) == 2 + 5 + 4  # two diagnoses, five statements, four controls
    # Controls (the other case's diagnosis and first statement) measure the judge's yes-bias and
    # never count: the scripted judge says yes to 3 of them (all but "Toxic nodule" vs "Acute gout").
    assert (solver["controls"], solver["control_yes"]) == (4, 3)
    assert sum(n["data"]["control"] for n in notes) == 4
    assert "| diagnose | 2 | 50.0% | 9%–91% |" in (out / "recall.md").read_text()


def test_recall_names_a_missing_case_column(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({"text": "A case.", "diagnosis": "Flu", "reasoning": ["Fever."]}) + "\n")
    result = medloom_cli(
        "eval", "--metric", "recall", "--dataset", str(cases), "--endpoint", "http://127.0.0.1:9/v1"
    )
    assert result.returncode == 2
    assert "--field case=COLUMN" in result.stderr and "Traceback" not in result.stderr


# -- MedFuzz ----------------------------------------------------------------------------------

BENCH = {
    # word: (gold, baseline answer, answer to a rewrite, guard's reply)
    "alpha": ("A", "A", "C", " yes, the age does not change it"),  # flips on turn 1
    "bravo": ("B", "B", "D", " no, the new history points elsewhere"),  # guard rejects every rewrite
    "charlie": ("C", "C", "C", " yes"),  # the solver holds: turns exhausted
    "delta": ("D", "A", "A", " yes"),  # wrong at baseline: not attacked
}


def _fuzz_replies(req: FakeRequest) -> str:
    prompt = req.prompt_text.rstrip()
    last = prompt.rsplit("Question:", 1)[-1]
    word = next(w for w in BENCH if w in last)
    _, baseline, attacked, guard = BENCH[word]
    if prompt.endswith("Rewritten question:"):
        turn = prompt.count("Earlier rewrite") + 1
        return f" A 90-year-old retired sailor (try {turn}) asks which option fits the {word} case?"
    if prompt.endswith("Valid:"):
        return guard
    if prompt.endswith("Answer:"):  # the direct solver
        return f" {attacked if 'retired sailor' in last else baseline}"
    raise AssertionError(f"unexpected prompt: {prompt[-200:]}")


def _bench(tmp_path: Path) -> Path:
    path = tmp_path / "bench.jsonl"
    rows = []
    for i, (word, (gold, *_)) in enumerate(BENCH.items()):
        options = {k: f"{word} {k.lower()}" for k in "ABCD"}
        rows.append(
            {
                "realidx": i,
                "question": f"Which option fits the {word} case?",
                "options": options,
                "answer_idx": gold,
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_medfuzz_flip_guard_rejection_and_exhausted_turns(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with FakeOpenAIServer(_fuzz_replies) as server:
        result = medloom_cli(
            "eval",
            "configs/eval/direct.yaml",
            "--attack",
            "medfuzz",
            "--turns",
            "2",
            "--dataset",
            str(_bench(tmp_path)),
            "--endpoint",
            server.base_url,
            "--out",
            str(out),
            "--no-cache",
        )
        prompts = [r.prompt_text for r in server.requests]
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "medfuzz.json").read_text())
    (s,) = summary["solvers"]
    assert (s["n"], s["correct_before"], s["correct_after"]) == (4, 3, 2)
    assert (s["attacked"], s["flips"], s["turns_to_flip"]) == (3, 1, {"1": 1})
    assert s["flip_rate"] == pytest.approx(1 / 3) and s["mean_turns_to_flip"] == 1.0
    assert s["guard_rejections"] == 2  # bravo's two rewrites
    # Each rewrite gets a guard control (the next question with this item's options); the scripted
    # guard replies by the options' word: yes for alpha's and charlie's (twice), no for bravo's (twice).
    assert (s["guard_controls"], s["guard_control_yes"]) == (5, 3)
    assert s["significance"]["p_one_sided"] == 0.5 and s["significance"]["worse"] == 1

    attacks = {
        a["item_id"]: a for a in map(json.loads, (out / "medfuzz_attacks.jsonl").read_text().splitlines())
    }
    alpha, bravo, charlie, delta = (attacks[k] for k in ("0", "1", "2", "3"))
    assert alpha["flipped_at"] == 1 and len(alpha["turns"]) == 1 and alpha["turns"][0]["answer"] == "C"
    # The guard rejected bravo's rewrites: the solver (which would be fooled) is never asked.
    assert bravo["flipped_at"] is None and [t["guard"] for t in bravo["turns"]] == ["no", "no"]
    assert all(t["answer"] is None for t in bravo["turns"])
    assert charlie["flipped_at"] is None and [t["correct"] for t in charlie["turns"]] == [True, True]
    assert delta["turns"] == [] and delta["correct_before"] is False
    # The attacker's second try on charlie saw its first rewrite and the solver's answer.
    second = [
        p
        for p in prompts
        if p.rstrip().endswith("Rewritten question:") and "charlie" in p and "Earlier rewrite 1" in p
    ]
    assert second and "The student answered C" in second[0]

    # The successful attack is kept with its events from the baseline, attacker and target runs.
    events = [json.loads(line) for line in Path(alpha["events_file"]).read_text().splitlines()]
    assert {e["item_id"] for e in events} == {"0"}
    assert len({e["run"] for e in events}) == 3
    assert any(e.get("kind") == "medfuzz_rewrite" for e in events)
    assert "MedFuzz" in result.stdout and "1/3 (33%)" in result.stdout


def test_clean_rewrite_drops_label_leading_letter_and_repeated_options() -> None:
    text = "Rewritten question: D\nA 43-year-old sailor has back pain. What is the cause?\nA) x\nB) y"
    assert clean_rewrite(text) == "A 43-year-old sailor has back pain. What is the cause?"
    assert clean_rewrite(" A\n\n") == ""


# -- significance -----------------------------------------------------------------------------


def test_exact_paired_permutation_test_hand_checked() -> None:
    # 6 items, 4 correct -> wrong, none the other way: 2^4 equally likely swaps, only "all four
    # worse" is as extreme one-sided (1/16); two-sided also "all four better" (2/16).
    before = [True] * 5 + [False]
    after = [False] * 4 + [True, False]
    test = paired_permutation_test(before, after)
    assert (test.worse, test.better) == (4, 0)
    assert test.p_one_sided == 1 / 16 and test.p_two_sided == 2 / 16
    # b = 3, c = 1: statistic 2; one-sided k >= 3 of 4: (4 + 1) / 16; two-sided |2k - 4| >= 2: 10 / 16.
    mixed = paired_permutation_test([True, True, True, False, True], [False, False, False, True, True])
    assert (mixed.p_one_sided, mixed.p_two_sided) == (5 / 16, 10 / 16)
    assert paired_permutation_test([True, False], [True, False]).p_one_sided == 1.0
    with pytest.raises(ValueError, match="pair them"):
        paired_permutation_test([True], [True, False])
