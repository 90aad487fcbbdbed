"""Solvers run at once over one endpoint pool; embeddings counted per prediction; Hub benchmarks."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import datasets
import pytest
import yaml

from medloom.core.events import EmbeddingCall, LLMCall
from medloom.eval.records import Prediction
from medloom.eval.runner import aevaluate
from medloom.llm.client import LLMClient
from medloom.llm.pool import SharedPools
from medloom.llm.settings import EndpointConfig
from medloom.runs.store import iter_events
from medloom.testing.fake import FakeOpenAIServer, FakeRequest, Reply
from tests.eval.bench_fixtures import expected, is_direct, solve, write_benchmark
from tests.helpers import REPO

SOLVERS = [REPO / "configs/eval/direct.yaml", REPO / "configs/eval/cot.yaml"]
N = 10


def _compared(predictions: list[Prediction]) -> list[tuple[Any, ...]]:
    return sorted(
        (p.solver, p.item_id, p.predicted, p.correct, p.status, p.prompt_tokens, p.completion_tokens, p.calls)
        for p in predictions
    )


class DirectWaitsForCot:
    """Holds every direct call until a CoT call has arrived: only solvers running at once pass."""

    def __init__(self) -> None:
        self.cot_seen = threading.Event()
        self.timed_out = False

    async def __call__(self, req: FakeRequest) -> str:
        if not is_direct(req):
            self.cot_seen.set()
        elif not await asyncio.get_running_loop().run_in_executor(None, self.cot_seen.wait, 120):
            self.timed_out = True
        return solve(req)


async def test_concurrent_solvers_predict_what_sequential_ones_do(tmp_path: Path) -> None:
    bench = write_benchmark(tmp_path / "bench.jsonl", N)
    with FakeOpenAIServer(solve) as server:
        sequential = await aevaluate(
            SOLVERS, bench, endpoints=[server.base_url], out_dir=tmp_path / "seq", sequential=True
        )
    responder = DirectWaitsForCot()
    with FakeOpenAIServer(responder) as server:
        concurrent = await aevaluate(SOLVERS, bench, endpoints=[server.base_url], out_dir=tmp_path / "conc")
    assert not responder.timed_out, "the direct solver finished before the CoT solver started"
    assert _compared(concurrent.predictions) == _compared(sequential.predictions)
    assert {(p.solver, p.item_id): p.predicted for p in concurrent.predictions} == expected(N)
    assert [s.solver for s in concurrent.solvers] == ["direct", "cot"]  # the order given
    assert [(s.n, s.correct) for s in concurrent.solvers] == [(s.n, s.correct) for s in sequential.solvers]


async def test_endpoint_concurrency_holds_across_solvers(tmp_path: Path) -> None:
    bench = write_benchmark(tmp_path / "bench.jsonl", N)

    def slow(req: FakeRequest) -> Reply:
        return Reply(texts=[solve(req)], delay_s=0.02)

    with FakeOpenAIServer(slow) as server:
        result = await aevaluate(
            SOLVERS,
            bench,
            endpoints=[server.base_url],
            overrides=["endpoints.0.max_concurrency=2"],
            concurrency=8,
            out_dir=tmp_path / "out",
        )
        peak = server.peak_in_flight
    assert len(result.predictions) == 2 * N
    assert 1 <= peak <= 2  # two solvers × 8 items in flight, one endpoint allowance of 2


def test_clients_over_the_same_endpoints_share_one_pool() -> None:
    pools = SharedPools()
    url = EndpointConfig(base_url="http://127.0.0.1:9/v1")
    a = LLMClient([url], pools=pools)
    b = LLMClient([url], pools=pools)
    other = LLMClient([EndpointConfig(base_url="http://127.0.0.1:10/v1")], pools=pools)
    alone = LLMClient([url])
    assert a.pool is b.pool
    assert other.pool is not a.pool and alone.pool is not a.pool


def _knn_solver(tmp_path: Path) -> Path:
    config = yaml.safe_load((REPO / "configs/eval/direct.yaml").read_text())
    config["name"] = "knn_direct"
    config["nodes"] = {
        "fewshot": {
            "type": "step",
            "op": "knn_fewshot",
            "params": {
                "bank": str(REPO / "configs/data/medprompt_bank.jsonl"),
                "k": 2,
                "embedding": {"model": "fake-embed"},
            },
        },
        **config["nodes"],
    }
    config["edges"] = ["fewshot -> answer"]
    config["llm"] = {"prices": {"fake-embed": {"prompt": 1000.0}}}
    path = tmp_path / "knn_direct.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def test_embedding_calls_count_in_predictions_and_come_from_the_cache_on_resume(tmp_path: Path) -> None:
    bench = write_benchmark(tmp_path / "bench.jsonl", 3)
    solver = _knn_solver(tmp_path)
    out = tmp_path / "out"
    with FakeOpenAIServer(solve, models=("fake-model", "fake-embed")) as server:
        result = await aevaluate([solver], bench, endpoints=[server.base_url], out_dir=out)
        assert {p.status for p in result.predictions} == {"kept"}
        embedded = len(server.embedding_inputs)
        again = await aevaluate([solver], bench, endpoints=[server.base_url], out_dir=out, resume=True)
        assert len(server.embedding_inputs) == embedded  # nothing embedded twice
    (run_dir,) = [p for p in (out / "runs").iterdir() if not p.name.startswith(".")]
    spent: dict[str, list[int]] = {}
    for _, event in iter_events(run_dir / "trajectories.jsonl", {"llm_call", "embedding_call"}):
        assert isinstance(event, LLMCall | EmbeddingCall) and event.response is not None
        tally = spent.setdefault(event.item_id, [0, 0])
        tally[0] += event.response.usage.prompt_tokens
        tally[1] += isinstance(event, EmbeddingCall) * event.response.usage.prompt_tokens
    assert sum(t[1] for t in spent.values()) > 0  # the bank and the questions were embedded
    for prediction in result.predictions:
        prompt, embedding = spent[prediction.item_id]
        assert prediction.prompt_tokens == prompt
        assert prediction.cost == pytest.approx(embedding * 1000.0 / 1e6)
        assert prediction.calls >= 2  # its embedding call and its answer
    assert result.solvers[0].cost == pytest.approx(sum(t[1] for t in spent.values()) * 1000.0 / 1e6)
    assert _compared(again.predictions) == _compared(result.predictions)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["models"]["fake-embed"]["prompt_tokens"] == sum(t[1] for t in spent.values())


async def test_a_hub_benchmark_is_read_as_run_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [json.loads(line) for line in write_benchmark(tmp_path / "b.jsonl", 4).read_text().splitlines()]
    hub = datasets.Dataset.from_list(rows)
    asked: list[tuple[Any, ...]] = []

    def load_dataset(name: str, config: str | None = None, *, split: str, streaming: bool) -> Any:
        asked.append((name, config, split, streaming))
        return hub

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)  # the Hub boundary: no network
    with FakeOpenAIServer(solve) as server:
        result = await aevaluate(
            [SOLVERS[0]],
            "someorg/mcq-mini",
            split="test",
            endpoints=[server.base_url],
            out_dir=tmp_path / "out",
        )
    assert result.benchmark == "someorg/mcq-mini"
    assert set(asked) == {("someorg/mcq-mini", None, "test", True)}
    assert {p.item_id: p.predicted for p in result.predictions} == {
        str(i): expected(4)["direct", str(i)] for i in range(4)
    }
    snapshot = yaml.safe_load(next((tmp_path / "out" / "runs").glob("*/config.yaml")).read_text())
    assert snapshot["dataset"]["path"] == "someorg/mcq-mini" and snapshot["dataset"]["split"] == "test"
