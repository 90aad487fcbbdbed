"""A numbered MCQ benchmark and a deterministic solver endpoint for the eval tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

from medloom.testing.fake import FakeRequest

LETTERS = "ABCD"


def gold(i: int) -> str:
    return LETTERS[i % 4]


def answer(i: int, direct: bool) -> str:
    """What the fake solver answers for question ``i``: gold for most, wrong for every third."""
    if i % 3 == 2:
        return LETTERS[(i + 1 + int(direct)) % 4]
    return gold(i)


def write_benchmark(path: Path, n: int) -> Path:
    """``n`` questions in the MedAgentsBench layout (realidx, question, options, answer_idx)."""
    rows = []
    for i in range(n):
        options = {k: f"option {k} of case {i}" for k in LETTERS}
        rows.append(
            {
                "realidx": i,
                "question": f"Which option fits case number {i}?",
                "options": options,
                "answer_idx": gold(i),
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def case_of(req: FakeRequest) -> int:
    last = req.prompt_text.rsplit("Question:", 1)[-1]
    found = re.search(r"case number (\d+)", last)
    assert found is not None, last
    return int(found.group(1))


def is_direct(req: FakeRequest) -> bool:
    """Direct prompts end with 'Answer:', CoT prompts with 'Step 1:'."""
    return req.prompt_text.rstrip().endswith("Answer:")


def solve(req: FakeRequest) -> str:
    i = case_of(req)
    if is_direct(req):
        return f" {answer(i, True)}"
    return f" The case points one way.\nAnswer: {answer(i, False)}"


def expected(n: int) -> dict[tuple[str, str], str]:
    """(solver, item id) → the letter the fake solver gives."""
    return {(s, str(i)): answer(i, s == "direct") for s in ("direct", "cot") for i in range(n)}
