"""The Python API: build a graph in code, run it, get the dataset and report back."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

import medloom
from medloom.testing.fake import FakeLLM, FakeOpenAIServer
from medloom.testing.mcq_student import McqStudent
from tests.helpers import REPO


def _spec(url: str, api_key_env: str | None = None) -> dict[str, object]:
    endpoint: dict[str, object] = {"name": "fake", "base_url": url}
    if api_key_env:
        endpoint["api_key_env"] = api_key_env
    return {
        "name": "in_code",
        "models": {"gen": {"model": "fake-model", "mode": "completion"}},
        "endpoints": [endpoint],
        "dataset": {
            "path": str(REPO / "configs" / "data" / "demo_mcq.jsonl"),
            "fields": {"id": "id"},
            "limit": 5,
        },
        "nodes": {
            "generate": {"type": "generator", "models": ["gen"], "template": "mcq_cot", "samples": 3},
            "check": {"type": "verifier", "verifiers": [{"check": "mcq_answer"}]},
            "vote": {"type": "selector", "method": "vote"},
        },
        "edges": ["generate -> check", {"from": "check", "to": "vote", "when": "passed"}],
    }


def test_run_a_graph_built_in_code(tmp_path: Path) -> None:
    fake = FakeLLM(McqStudent())  # in process: the run's client gets the fake's transport
    spec = medloom.GraphSpec.model_validate(_spec(fake.base_url))
    result = medloom.run(spec, runs_dir=tmp_path, transport=fake.transport)
    assert fake.request_count == result.report.calls > 0
    assert {r.node for r in fake.requests} == {"generate"}
    assert isinstance(result.dataset, datasets.Dataset)
    assert result.report.items == 5
    assert result.report.kept + result.report.rejected + result.report.failed == 5
    assert len(result.dataset) == result.report.rows
    for row in result.dataset:
        assert row["predicted"] == row["answer"]  # only passing traces reach the selector
    assert result.run_dir.parent == tmp_path
    reloaded = datasets.load_from_disk(str(result.run_dir / "dataset"))
    assert reloaded["trace_id"] == result.dataset["trace_id"]


def test_api_keys_never_reach_the_run_directory(
    tmp_path: Path, student_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-7d1f0c9a5b3e4d2f8a6c"
    monkeypatch.setenv("MEDLOOM_TEST_KEY", secret)
    result = medloom.run(_spec(student_server.base_url, api_key_env="MEDLOOM_TEST_KEY"), runs_dir=tmp_path)
    assert result.report.items == 5
    assert student_server.requests[0].headers.get("Authorization") == f"Bearer {secret}"
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaked == []
    assert "MEDLOOM_TEST_KEY" in (result.run_dir / "config.yaml").read_text()
