"""The clinical evaluations in process: one embedded server for every stage, failures counted."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import yaml

from medloom.eval.medfuzz import aattack
from medloom.eval.recall import aevaluate_recall
from medloom.graphs.spec import GraphSpec
from medloom.testing.fake import FakeOpenAIServer, FakeRequest, Reply
from tests.eval.test_clinical_eval import CASES, _bench, _fuzz_replies, _recall_replies
from tests.helpers import REPO


async def test_recall_stages_share_one_embedded_server_and_count_a_failed_judge(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text("".join(json.dumps(c) + "\n" for c in CASES))

    def judge_fails_on_graves(req: FakeRequest) -> Reply | str:
        if (
            req.prompt_text.rstrip().endswith("Covered:")
            and "goitre" in req.prompt_text.rsplit("Statement:", 1)[-1]
        ):
            return Reply.error(400, message="judge prompt too long")
        return _recall_replies(req)

    started: list[str] = []
    with FakeOpenAIServer(judge_fails_on_graves) as server:

        @contextlib.asynccontextmanager
        async def embedded(spec: GraphSpec) -> AsyncIterator[list[str]]:
            started.append(spec.name)
            yield [server.base_url]

        result = await aevaluate_recall(
            [REPO / "configs/eval/diagnose.yaml"],
            cases,
            judge=REPO / "configs/eval/recall_judge.yaml",
            out_dir=tmp_path / "out",
            embedded=embedded,
            no_cache=True,
        )
    assert started == ["diagnose"]  # the judge stage reused the server the solver stage started
    (summary,) = result.solvers
    assert (summary.n, summary.unjudged, summary.correct) == (2, 1, 1)
    graves = next(c for c in result.cases if c.case_id == "PMC-2")
    assert graves.status.startswith("judge failed") and "judge prompt too long" in graves.status
    assert (graves.match, graves.covered, graves.recall) == ("no", 0, 0.0)
    # The failed case still counts in both denominators.
    assert summary.pooled_recall == 1 / 5 and summary.recall == (1 / 3 + 0) / 2


async def test_medfuzz_keeps_the_finished_turns_when_a_later_stage_fails(tmp_path: Path) -> None:
    # An attacker recipe whose template does not exist: its stage cannot start, so the baseline
    # stands and the summary says why the attack stopped.
    attacker = yaml.safe_load((REPO / "configs/eval/medfuzz_attacker.yaml").read_text())
    attacker["nodes"]["attack"]["template"] = "no_such_template"
    attacker["dataset"]["path"] = str(REPO / "configs/data/demo_mcq.jsonl")
    path = tmp_path / "attacker.yaml"
    path.write_text(yaml.safe_dump(attacker))
    with FakeOpenAIServer(_fuzz_replies) as server:
        result = await aattack(
            [REPO / "configs/eval/direct.yaml"],
            _bench(tmp_path),
            attacker=path,
            endpoints=[server.base_url],
            out_dir=tmp_path / "out",
            no_cache=True,
        )
    (summary,) = result.solvers
    assert (summary.n, summary.correct_before, summary.correct_after, summary.flips) == (4, 3, 3, 0)
    assert summary.stopped is not None and summary.stopped.startswith("stopped during turn 1")
    assert "no_such_template" in summary.stopped
    assert all(a.turns == [] for a in result.attacks)


async def test_medfuzz_records_why_the_attacker_lost_an_item(tmp_path: Path) -> None:
    def attacker_fails_on_charlie(req: FakeRequest) -> Reply | str:
        prompt = req.prompt_text.rstrip()
        if prompt.endswith("Rewritten question:") and "charlie" in prompt.rsplit("Question:", 1)[-1]:
            return Reply.error(400, message="attacker prompt too long")
        return _fuzz_replies(req)

    with FakeOpenAIServer(attacker_fails_on_charlie) as server:
        result = await aattack(
            [REPO / "configs/eval/direct.yaml"],
            _bench(tmp_path),
            attacker=REPO / "configs/eval/medfuzz_attacker.yaml",
            turns=1,
            endpoints=[server.base_url],
            out_dir=tmp_path / "out",
            no_cache=True,
        )
    charlie = next(a for a in result.attacks if a.item_id == "2")
    (turn,) = charlie.turns
    assert (turn.guard, turn.answer, charlie.flipped_at) == ("no", None, None)
    assert turn.guard_reply.startswith("attacker failed") and "attacker prompt too long" in turn.guard_reply
    assert result.solvers[0].flips == 1  # alpha still flips
