"""Run directories for the inspection tests, made by running the real mcq_refine recipe on the fake."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from medloom.runs.runner import run
from medloom.testing.fake import FakeOpenAIServer, FakeRequest, Reply
from medloom.testing.mcq_student import McqStudent
from tests.helpers import RECIPE
from tests.ops.recipes import CONFIGS

FAILING_QUESTION = "peaked T waves"
"""Every call about this item gets a non-retryable error, so the item ends as failed."""


class FlakyStudent:
    """A student that rarely fixes its mistakes (so some items are rejected) and breaks on one item."""

    def __init__(self) -> None:
        self.student = McqStudent(fix_rate=0.0, judge_correct_rate=0.6)

    def __call__(self, req: FakeRequest) -> Reply:
        if FAILING_QUESTION in req.prompt_text[-1500:]:
            return Reply.error(400, message="context length exceeded")
        return self.student(req)


def make_run(runs_dir: Path, limit: int = 8) -> Path:
    overrides = ["nodes.generate.samples=1", "nodes.generate.temperatures=[0.7]"]
    with FakeOpenAIServer(FlakyStudent()) as srv:
        result = run(RECIPE, endpoints=[srv.base_url], runs_dir=runs_dir, limit=limit, overrides=overrides)
    return result.run_dir


@pytest.fixture(scope="session")
def mcq_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of 8 items with kept, rejected and failed ones (shared: do not modify)."""
    return make_run(tmp_path_factory.mktemp("runs"))


def normalise_for_snapshots(run_dir: Path) -> None:
    """Pin what varies between runs (times, latencies, the fake's port) so screens are reproducible."""
    lines = (run_dir / "trajectories.jsonl").read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        event = json.loads(line)
        event["ts"] = 1_800_000_000.0 + i
        if event.get("type") == "item_end":
            event["wall_s"] = 1.5
        response = event.get("response")
        if response:
            response["latency_s"] = 0.25
            response["endpoint"] = "http://fake/v1"
        out.append(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
    (run_dir / "trajectories.jsonl").write_text("\n".join(out) + "\n")


@pytest.fixture(scope="session")
def snapshot_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sequential (concurrency 1) run with pinned times, in a directory named ``snapshot-run``."""
    runs = tmp_path_factory.mktemp("snap")
    overrides = ["nodes.generate.samples=1", "nodes.generate.temperatures=[0.7]", "run.concurrency=1"]
    with FakeOpenAIServer(FlakyStudent()) as srv:
        made = run(RECIPE, endpoints=[srv.base_url], runs_dir=runs, limit=6, overrides=overrides).run_dir
    target = runs / "snapshot-run"
    made.rename(target)
    normalise_for_snapshots(target)
    return target


def _pharmacology_dissents_once(field: str, report: str, count: int) -> str:
    if field == "Pharmacology" and report.startswith("Draft"):
        return " no\nAdvice: Say that antithyroid drugs follow."
    return " yes"


# The caller's agent and node names do not cross a socket: this TCP run (kept over TCP so its
# snapshots stay deterministic) tells the panel which MedAgents agent a template belongs to.
_MEDAGENTS_ROLES = {
    "experts are best placed": ("domains", "domains"),
    "analyse a question from the viewpoint": ("experts", "experts:question_expert"),
    "weigh each option": ("experts", "experts:option_expert"),
    "A chair synthesises": ("experts", "experts:report"),
    "A chair revises": ("vote", "vote:revise"),
    "review a panel report": ("vote", "vote:vote"),
    "A decision maker reads": ("decide", "decide"),
}


def _over_a_socket(script: Callable[[FakeRequest], str]) -> Callable[[FakeRequest], str]:
    def respond(req: FakeRequest) -> str:
        node, agent = next(role for marker, role in _MEDAGENTS_ROLES.items() if marker in req.prompt_text)
        req.tags = {"node": node, "agent": agent}
        return script(req)

    return respond


@pytest.fixture(scope="session")
def method_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real runs of the medagents (one dissent, then consensus) and meditron_resample recipes."""
    from tests.ops.test_medagents import TWO_EXPERTS, Panel
    from tests.ops.test_meditron_recipe import teacher

    runs = tmp_path_factory.mktemp("methods")
    with FakeOpenAIServer(_over_a_socket(Panel(_pharmacology_dissents_once))) as srv:
        medagents = run(
            CONFIGS / "medagents.yaml",
            endpoints=[srv.base_url],
            runs_dir=runs,
            limit=1,
            overrides=list(TWO_EXPERTS),
        ).run_dir
    overrides = ["models.teacher.model=fake-model", "nodes.teacher.params.max_tries=3"]
    with FakeOpenAIServer(teacher) as srv:
        meditron = run(
            CONFIGS / "meditron_resample.yaml",
            endpoints=[srv.base_url],
            runs_dir=runs,
            limit=3,
            overrides=overrides,
        ).run_dir
    return {"medagents": medagents, "meditron": meditron}
