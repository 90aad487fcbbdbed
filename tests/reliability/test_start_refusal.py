"""Issue 12 leftovers: a start check that refuses a run (here: a model the endpoint does not serve)
used to leave a run directory whose session was marked "crashed". A new run refused at start now
leaves no run directory; a resume refused at start marks its session "refused" with the reason,
and a later resume goes on as usual."""

from __future__ import annotations

from pathlib import Path

from medloom.testing.fake import FakeOpenAIServer
from medloom.testing.mcq_student import McqStudent
from tests.helpers import medloom_cli, only_run, read_report
from tests.reliability.lifecycle import run_args, sessions


def test_a_new_run_refused_at_start_leaves_no_run_directory(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with FakeOpenAIServer(McqStudent(), models=["med-7b"]) as srv:
        result = medloom_cli("run", *run_args(srv.base_url, runs, "--set", "models.gen.model=gpt-x"))
        calls = srv.request_count
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "model 'gpt-x' is not served" in result.stderr
    assert calls == 0
    assert not list(runs.glob("*/run.json")) and not list(runs.glob(".creating-*"))


def test_a_resume_refused_at_start_is_marked_refused_and_a_later_resume_goes_on(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with FakeOpenAIServer(McqStudent(), models=["fake-model"]) as srv:
        first = medloom_cli("run", *run_args(srv.base_url, runs, "--limit", "6", "--max-calls", "3"))
        assert first.returncode == 5, first.stderr  # stopped by the cap, items left to do
        run_dir = only_run(runs)
        resume = ["run", "--resume", run_dir.name, "--runs-dir", str(runs), "-q", "--max-calls", "100000"]

        refused = medloom_cli(*resume, "--set", "models.gen.model=gpt-x")
        assert refused.returncode == 2 and "model 'gpt-x' is not served" in refused.stderr
        last = sessions(run_dir)[-1]
        assert last["status"] == "refused" and "gpt-x" in last["reason"]
        assert "gpt-x" in (run_dir / "medloom.log").read_text()

        done = medloom_cli(*resume)
    assert done.returncode == 0, done.stderr
    assert [s["status"] for s in sessions(run_dir)] == ["stopped", "refused", "completed"]
    assert read_report(run_dir)["items"] == 6
