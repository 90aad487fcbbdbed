"""`--mode chat`: one switch for every model alias, in run, validate and eval."""

from __future__ import annotations

import json
from pathlib import Path

from medloom.testing.fake import FakeOpenAIServer, FakeRequest
from tests.helpers import REPO, medloom_cli


def test_validate_accepts_chat_mode_for_every_recipe_and_rejects_a_bad_mode() -> None:
    for recipe in ("reasonmed", "medagents", "kg_multihop"):
        result = medloom_cli("validate", recipe, "--mode", "chat")
        assert result.returncode == 0, result.stderr
    result = medloom_cli("validate", "reasonmed", "--mode", "instruct")
    assert result.returncode == 2 and "--mode must be chat or completion" in result.stderr


def test_eval_applies_the_mode_to_every_solver_config(tmp_path: Path) -> None:
    kinds: list[str] = []

    def solver(req: FakeRequest) -> str:
        kinds.append("chat" if req.messages else "completion")
        return "Step 1: it fits.\nAnswer: A"

    bench = tmp_path / "bench.jsonl"
    bench.write_text(
        json.dumps({"question": "Q?", "options": {"A": "x", "B": "y"}, "answer_idx": "A", "answer": "x"})
        + "\n"
    )
    with FakeOpenAIServer(solver) as server:
        result = medloom_cli(
            "eval",
            str(REPO / "configs/eval/direct.yaml"),
            str(REPO / "configs/eval/cot.yaml"),
            "--dataset",
            str(bench),
            "--endpoint",
            server.base_url,
            "--mode",
            "chat",
            "--no-cache",
            "--json",
            "--out",
            str(tmp_path / "out"),
        )
    assert result.returncode == 0, result.stderr
    assert len(kinds) >= 2 and set(kinds) == {"chat"}  # both recipes say `mode: completion`
