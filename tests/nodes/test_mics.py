"""The mics node on scripted mentors and interns: accept at 1.0, fail at all zeros, and keep the best
step until max_depth, with the search tree in the trajectory."""

from __future__ import annotations

import re

import pytest

from medloom.core.events import Note, TraceCreated
from medloom.nodes.mics import decide
from medloom.testing import FakeRequest
from tests.graphs.test_engine import ends, item, run
from tests.ops.recipes import recipe_runtime

MODELS = (
    "models.mentor_a.model=fake-model",
    "models.mentor_b.model=fake-model",
    "models.intern.model=fake-model",
)


class Search:
    """Mentors propose ``<mentor> step <k>``; interns answer by ``grades[(step text, temperature)]``
    ("A" is gold; unknown steps get "B")."""

    def __init__(self, grades: dict[tuple[str, float], str]) -> None:
        self.grades = grades
        self.intern_prompts: list[str] = []

    def __call__(self, req: FakeRequest) -> str:
        case = req.prompt_text.rsplit("###", 1)[-1]
        k = int(re.findall(r"Step (\d+):\s*$", case)[0])
        if req.agent and req.agent.startswith("mentor:"):
            who = req.agent.removeprefix("mentor:")
            return (
                f" {who} step {k}\nStep {k + 1}: {who} wraps up\nAnswer: {'A' if who == 'mentor_a' else 'C'}"
            )
        self.intern_prompts.append(case)
        last = re.findall(r"Step \d+: (.+)\n", case)[-1]
        answer = self.grades.get((last, req.body["temperature"]), "B")
        return f" the intern concludes\nAnswer: {answer}"


def depth_notes(events: list) -> list[dict]:
    return [e.data for e in events if isinstance(e, Note) and e.kind == "mics_depth"]


def test_decide() -> None:
    assert decide([0.5, 1.0], 1, 3) == ("accepted", 1)
    assert decide([0.0, 0.0], 1, 3) == ("failed", None)
    assert decide([0.5, 0.5], 1, 3) == ("continue", 0)  # ties: the earlier mentor
    assert decide([0.0, 0.5], 3, 3) == ("max_depth", 1)


async def test_step_scoring_one_accepts_the_mentors_whole_chain(fake_llm) -> None:
    script = Search(
        {("mentor_b step 1", 0.7): "A", ("mentor_b step 1", 1.0): "A", ("mentor_a step 1", 0.7): "A"}
    )
    _, client = fake_llm(script)
    events = await run(await recipe_runtime("mics", client, *MODELS), [item(1)])
    notes = depth_notes(events)
    assert len(notes) == 1 and notes[0]["outcome"] == "accepted" and notes[0]["chosen"] == "mentor_b"
    assert [p["score"] for p in notes[0]["proposals"]] == [0.5, 1.0]  # correct / (2 temperatures x 1 intern)
    assert notes[0]["proposals"][1]["intern_answers"] == ["A", "A"]
    (trace,) = [e.trace for e in events if isinstance(e, TraceCreated) and e.node == "search"]
    assert [s.text for s in trace.steps] == ["mentor_b step 1", "mentor_b wraps up"]
    assert (
        trace.answer == "C" and trace.meta["mics_outcome"] == "accepted" and trace.meta["mics_score"] == 1.0
    )
    # the mentor's own answer is wrong: the recipe's gold check rejects the accepted chain
    assert ends(events)["q1"].status == "rejected"


async def test_all_zero_scores_reject_the_item(fake_llm) -> None:
    _, client = fake_llm(Search({}))
    events = await run(await recipe_runtime("mics", client, *MODELS), [item(1)])
    end = ends(events)["q1"]
    assert (end.status, end.node) == ("rejected", "search")
    assert "every mentor's step scored 0 at depth 1" in (end.reason or "")
    assert [n["outcome"] for n in depth_notes(events)] == ["failed"]


@pytest.mark.parametrize("at_max_depth", ["keep", "reject"])
async def test_best_step_is_appended_until_max_depth(fake_llm, at_max_depth: str) -> None:
    grades = {(f"mentor_a step {k}", 0.7): "A" for k in (1, 2, 3)} | {("mentor_b step 2", 1.0): "A"}
    script = Search(grades)
    _, client = fake_llm(script)
    rt = await recipe_runtime("mics", client, *MODELS, f"nodes.search.at_max_depth={at_max_depth}")
    events = await run(rt, [item(1)])
    notes = depth_notes(events)
    assert [n["outcome"] for n in notes] == ["continue", "continue", "max_depth"]
    assert [n["chosen"] for n in notes] == ["mentor_a", "mentor_a", "mentor_a"]
    assert [n["prefix"] for n in notes] == [[], ["mentor_a step 1"], ["mentor_a step 1", "mentor_a step 2"]]
    assert [[p["score"] for p in n["proposals"]] for n in notes] == [[0.5, 0.0], [0.5, 0.5], [0.5, 0.0]]
    # interns continue from the kept prefix plus the proposed step
    assert any(
        "Step 1: mentor_a step 1\nStep 2: mentor_b step 2\nStep 3:" in p for p in script.intern_prompts
    )
    end = ends(events)["q1"]
    if at_max_depth == "reject":
        assert (end.status, end.node) == ("rejected", "search")
        assert "within max_depth 3 (best 0.50)" in (end.reason or "")
        return
    (trace,) = [e.trace for e in events if isinstance(e, TraceCreated) and e.node == "search"]
    assert [s.index for s in trace.steps] == [1, 2, 3, 4]
    assert trace.steps[-1].text == "mentor_a wraps up" and trace.answer == "A"
    assert trace.meta["mics_outcome"] == "max_depth" and trace.meta["mics_depth"] == 3
    assert end.status == "kept"


async def test_the_viewer_shows_each_depth_with_its_proposals(fake_llm) -> None:
    import io

    from rich.console import Console

    from medloom.tui.note_view import note_label, render_note

    grades = {(f"mentor_a step {k}", 0.7): "A" for k in (1, 2, 3)}
    _, client = fake_llm(Search(grades))
    events = await run(await recipe_runtime("mics", client, *MODELS), [item(1)])
    notes = [e for e in events if isinstance(e, Note) and e.kind == "mics_depth"]
    assert [str(note_label(n)) for n in notes] == [
        "mics depth 1 continue → mentor_a",
        "mics depth 2 continue → mentor_a",
        "mics depth 3 max_depth → mentor_a",
    ]
    console = Console(file=io.StringIO(), width=120)
    console.print(render_note(notes[1]))
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "MICS depth 2" in shown and "mentor_a step 1" in shown  # the prefix
    assert "mentor_b step 2" in shown and "0.50" in shown and "0.00" in shown


async def test_mentors_on_one_served_model_send_different_requests(fake_llm) -> None:
    seeds: dict[str, set[int]] = {}
    script = Search({})

    def spy(req: FakeRequest) -> str:
        seeds.setdefault(req.agent or "", set()).add(req.body["seed"])
        return script(req)

    _, client = fake_llm(spy)
    await run(await recipe_runtime("mics", client, *MODELS), [item(1)])
    # the same prompt to the same model would otherwise be one cached request for both mentors
    assert seeds == {"mentor:mentor_a": {0}, "mentor:mentor_b": {1}, "intern:intern": {0}}
