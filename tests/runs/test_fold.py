"""The one pass over the trajectory: the same report as before on a v1 run, retried items counted by
their last outcome, one read of the file at a run's end, and extra figures through fold parts."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from medloom.core.events import Event, ItemFinished, ItemStarted, NodeStats
from medloom.core.trajectory import TrajectoryHeader
from medloom.runs.fold import fold_run
from medloom.runs.outputs import write_outputs
from medloom.runs.rundir import RunDir
from medloom.runs.runner import run
from medloom.runs.stats import RunStats
from medloom.runs.store import TrajectoryWriter, iter_events
from medloom.testing.fake import FakeOpenAIServer
from medloom.testing.mcq_student import McqStudent
from tests.helpers import RECIPE

V1_RUN = Path(__file__).parents[1] / "core" / "data" / "run_v1"


@pytest.fixture
def v1_run(tmp_path: Path) -> RunDir:
    target = tmp_path / "run_v1"
    shutil.copytree(V1_RUN, target)
    return RunDir(target)


def _same_where_old_had_it(old: Any, new: Any, where: str = "report") -> None:
    """``new`` agrees with ``old`` on every key ``old`` has (v2 only adds keys)."""
    if isinstance(old, dict):
        for key, value in old.items():
            _same_where_old_had_it(value, new[key], f"{where}.{key}")
    elif isinstance(old, float):
        assert new == pytest.approx(old), where
    else:
        assert new == old, where


def test_a_v1_run_folds_to_the_report_its_own_medloom_wrote(v1_run: RunDir) -> None:
    old = json.loads((v1_run.path / "report.json").read_text())
    fold = fold_run(v1_run)
    new = json.loads(fold.report.model_dump_json())
    old["rejection_reasons"] = [list(r) for r in old["rejection_reasons"]]
    assert old.pop("contamination") == [] and new["listings"] == {}  # listed notes have their own key now
    _same_where_old_had_it(old, new)
    assert (fold.report.kept, fold.report.rejected, fold.report.failed) == (5, 2, 1)
    assert fold.report.cost == pytest.approx(0.004978)  # llm.prices of the run's config snapshot
    assert sum(u.calls for u in fold.stats.usage) == fold.report.calls == 18
    rows = write_outputs(v1_run, fold.kept_offsets)
    assert sorted(rows["item_id"]) == sorted(
        e.item_id for _, e in iter_events(v1_run.trajectories, {"item_end"}) if e.status == "kept"
    )


def test_a_retried_item_counts_by_its_last_outcome(v1_run: RunDir) -> None:
    before = fold_run(v1_run)
    failed = next(
        e
        for _, e in iter_events(v1_run.trajectories, {"item_end"})
        if isinstance(e, ItemFinished) and e.status == "failed"
    )
    row = {"item_id": failed.item_id, "predicted": "B"}
    writer = TrajectoryWriter(v1_run.trajectories, TrajectoryHeader(attempt=1))  # a v2 session after v1
    writer.write(ItemStarted(item_id=failed.item_id, index=0, input={}, attempt=1))
    retried = ItemFinished(
        item_id=failed.item_id,
        status="kept",
        rows=[row],
        attempt=1,
        stats={"generate": NodeStats(traces_in=1)},
    )
    writer.write(retried)
    writer.close()
    after = fold_run(v1_run)
    assert (after.report.items, after.report.kept, after.report.failed) == (8, 6, 0)
    assert after.report.rows == before.report.rows + 1
    assert after.report.failure_reasons == []
    assert (
        after.report.nodes["generate"].traces_in
        == before.report.nodes["generate"].traces_in
        - (failed.stats["generate"].traces_in if "generate" in failed.stats else 0)
        + 1
    )
    assert len(after.kept_offsets) == 6 and after.kept_offsets[-1] > before.kept_offsets[-1]
    assert sum(b.failed for b in after.stats.throughput) == 0


def test_a_run_reads_its_trajectory_once_at_the_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real_open = Path.open

    def counting_open(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if self.name == "trajectories.jsonl" and "r" in mode:
            opened.append(mode)
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_open)
    with FakeOpenAIServer(McqStudent()) as srv:
        result = run(RECIPE, endpoints=[srv.base_url], runs_dir=tmp_path, limit=4)
    assert result.report.items == 4 and len(result.dataset) == result.report.rows
    # the done-set at the start, the fold, and two passes of seeks over the kept rows: one types
    # the inferred columns (source_fields, output.columns), one writes the rows
    assert len(opened) == 4, opened
    assert (result.run_dir / "README.md").read_text().count("| generate |") >= 1


class VerdictsByVerifier:
    """A fold part: how often each verifier passed and failed (the kind of figure a plugin adds)."""

    types = frozenset({"verdict"})

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, bool]] = Counter()
        self.finished_with: RunStats | None = None

    def add(self, offset: int, event: Event) -> None:
        verdict = event.verdict  # type: ignore[union-attr]
        self.counts[verdict.verifier, verdict.passed] += 1

    def finish(self, stats: RunStats) -> None:
        self.finished_with = stats


def test_fold_parts_see_their_events_in_the_same_pass(v1_run: RunDir) -> None:
    part = VerdictsByVerifier()
    fold = fold_run(v1_run, parts=[part])
    raw = Counter(
        (v["verdict"]["verifier"], v["verdict"]["passed"])
        for v in map(json.loads, v1_run.trajectories.read_text().splitlines())
        if v["type"] == "verdict"
    )
    assert part.counts == raw and sum(raw.values()) == 18
    assert part.finished_with is fold.stats
