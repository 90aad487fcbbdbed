"""The medagents recipe's control flow on scripted replies: vote, revise, tie-break, decide."""

from __future__ import annotations

import re
from collections.abc import Callable

from medloom.core.events import ItemFinished, Note, TraceRevised
from medloom.ops.medagents import parse_fields, parse_vote
from medloom.testing import FakeRequest
from tests.graphs.test_engine import ends, item, run
from tests.ops.recipes import recipe_runtime, tail

TWO_EXPERTS = (
    "models.panel.model=fake-model",
    "nodes.domains.params.question_experts=1",
    "nodes.domains.params.option_experts=1",
)

VoteRule = Callable[[str, str, int], str]
"""(expert field, report text, how many votes that expert cast before) → the vote reply."""


class Panel:
    """Plays every MedAgents role; votes come from ``vote_rule``."""

    def __init__(self, vote_rule: VoteRule, answer: str = "A"):
        self.vote_rule = vote_rule
        self.answer = answer
        self.votes_by: dict[str, int] = {}
        self.revise_prompts: list[str] = []

    def __call__(self, req: FakeRequest) -> str:
        # routed by the calling agent (in process), so rewording a template reroutes nothing
        case = tail(req.prompt_text)
        if req.node == "domains":
            return " Cardiology, Endocrinology" if "A)" not in case else " Pharmacology"
        if req.agent == "experts:question_expert":
            return " Palpitations with thyrotoxicosis are adrenergic."
        if req.agent == "experts:option_expert":
            return " Propranolol (A) controls the adrenergic symptoms fastest."
        if req.agent == "experts:report":
            return " Draft report: beta blockade first."
        if req.agent == "vote:revise":
            self.revise_prompts.append(case)
            return f" Revised report {len(self.revise_prompts)}: propranolol first, then antithyroid drugs."
        if req.agent == "vote:vote":
            field = re.search(r"Field: (.+)", case)
            report = re.search(r"Report: (.+)", case)
            assert field and report
            name = field.group(1).strip()
            count = self.votes_by.get(name, 0)
            self.votes_by[name] = count + 1
            return self.vote_rule(name, report.group(1), count)
        if req.node == "decide":
            return f" {self.answer}"
        raise AssertionError(f"unexpected call from {req.node!r} / {req.agent!r}")


def notes(events: list[object], kind: str) -> list[Note]:
    return [e for e in events if isinstance(e, Note) and e.kind == kind]


async def test_a_dissenting_vote_triggers_a_revision_round(fake_llm) -> None:
    def rule(field: str, report: str, count: int) -> str:
        if field == "Pharmacology" and report.startswith("Draft"):
            return " no\nAdvice: Say that antithyroid drugs follow."
        return " yes"

    panel = Panel(rule)
    _server, client = fake_llm(panel)
    rt = await recipe_runtime("medagents", client, *TWO_EXPERTS)
    events = await run(rt, [item(1)])
    end = ends(events)["q1"]
    assert end.status == "kept"
    (row,) = end.rows
    assert row["vote_outcome"] == "unanimous" and row["vote_rounds"] == 2
    assert row["report"].startswith("Revised report 1:")
    assert row["predicted"] == "A" and row["reasoning"].endswith("Answer: A")
    assert row["experts"] == {"question_domains": ["Cardiology"], "option_domains": ["Pharmacology"]}

    rounds = notes(events, "vote_round")
    assert [r.data["round"] for r in rounds] == [1, 2]
    assert rounds[0].data["revised"] is True and rounds[1].data["outcome"] == "consensus"
    first = {v["expert"]: v["agrees"] for v in rounds[0].data["votes"]}
    assert first == {"Cardiology": True, "Pharmacology": False}
    # Only the dissenter's advice reaches the reviser.
    (revise_prompt,) = panel.revise_prompts
    assert "- Pharmacology: Say that antithyroid drugs follow." in revise_prompt
    assert "Cardiology:" not in revise_prompt
    (revised,) = [e for e in events if isinstance(e, TraceRevised)]
    assert revised.revision.before.startswith("Draft") and revised.revision.after.startswith(
        "Revised report 1"
    )


async def run_tie(fake_llm, chair_agrees: bool) -> tuple[ItemFinished, list[Note], Note]:  # type: ignore[no-untyped-def]
    """Two experts who never agree with each other; the chair is the first (question) expert."""

    def rule(field: str, report: str, count: int) -> str:
        agrees = chair_agrees if field == "Cardiology" else not chair_agrees
        return " yes" if agrees else " no\nAdvice: I still disagree."

    panel = Panel(rule)
    _server, client = fake_llm(panel)
    rt = await recipe_runtime("medagents", client, *TWO_EXPERTS)
    events = await run(rt, [item(1)])
    assert len(panel.revise_prompts) == 2  # rounds 1 and 2 revise; round 3 is the last
    (outcome,) = notes(events, "vote_outcome")
    return ends(events)["q1"], notes(events, "vote_round"), outcome


async def test_a_tied_vote_goes_to_the_chair_deterministically(fake_llm) -> None:
    end, rounds, outcome = await run_tie(fake_llm, chair_agrees=True)
    assert end.status == "kept" and len(rounds) == 3
    assert outcome.data["outcome"] == "tie broken by chair (Cardiology: yes)" and outcome.data["accepted"]
    assert end.rows[0]["vote_outcome"] == outcome.data["outcome"]
    again, _, outcome_again = await run_tie(fake_llm, chair_agrees=True)
    assert again.status == "kept" and outcome_again.data == outcome.data

    end, _, outcome = await run_tie(fake_llm, chair_agrees=False)
    assert (end.status, end.node, end.reason_code) == ("rejected", "vote", "no consensus")
    assert end.reason is not None and "tie broken by chair (Cardiology: no)" in end.reason
    assert outcome.data["accepted"] is False


async def test_wrong_panel_answer_is_rejected_by_the_gold_check(fake_llm) -> None:
    _server, client = fake_llm(Panel(lambda f, r, c: " yes", answer="B"))
    rt = await recipe_runtime("medagents", client, *TWO_EXPERTS)
    end = ends(await run(rt, [item(1)]))["q1"]
    assert (end.status, end.node) == ("rejected", "check")


def test_parse_fields_and_votes() -> None:
    assert parse_fields("Fields: 1. Cardiology, 2. Endocrinology; cardiology\n- Pharmacology") == [
        "Cardiology",
        "Endocrinology",
        "Pharmacology",
    ]
    assert parse_fields("The The The The The The The The The The The The") == []
    assert parse_fields("Insulin, thyroid, and parathyroid") == ["Insulin", "thyroid", "parathyroid"]
    assert parse_vote("Vote: no\nAdvice: fix step 2") == (False, "fix step 2")
    assert parse_vote("yes, I agree") == (True, "")
    assert parse_vote("maybe") == (None, "")
