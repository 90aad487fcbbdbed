"""A run survives a hostile pool: 30% of replies are 429s, 500s, timeouts, truncated JSON or
dropped connections, and one of the two endpoints dies mid-run. Every item is accounted for."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import medloom
from medloom.testing.fake import FakeOpenAIServer, FakeRequest, Reply
from medloom.testing.mcq_student import McqStudent

ITEMS = 40
TIMEOUT_S = 1.0  # a legitimate reply must never time out, even on a loaded machine


class Chaos:
    """Answers like an MCQ student, except for a deterministic 30% of requests (by seed, request
    body and attempt), which get one of five faults."""

    FAULTS = ("429", "500", "timeout", "truncated", "disconnect")

    def __init__(self, seed: str, rate: float = 0.3) -> None:
        self.seed, self.rate = seed, rate
        self.student = McqStudent()
        self.served: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, req: FakeRequest) -> Reply:
        key = f"{self.seed}#{req.attempt}#" + json.dumps(req.body, sort_keys=True)
        roll = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        fault = self.FAULTS[int(roll / self.rate * len(self.FAULTS))] if roll < self.rate else "ok"
        with self._lock:
            if req.index_in_run < len(self.FAULTS):  # every kind at least once, whatever the dice
                fault = self.FAULTS[req.index_in_run]
            self.served[fault] += 1
        if fault == "429":
            return Reply.error(429, retry_after=0)
        if fault == "500":
            return Reply.error(500)
        if fault == "timeout":
            return Reply.slow(TIMEOUT_S * 3, "too late")
        if fault == "truncated":
            return Reply.garbage()
        if fault == "disconnect":
            return Reply.disconnect()
        return self.student(req)


class DiesAfter:
    """Wraps a responder; after ``n`` requests the server goes down (connections dropped)."""

    def __init__(self, inner: Chaos, n: int) -> None:
        self.inner, self.n = inner, n
        self.server: FakeOpenAIServer | None = None
        self.killed = threading.Event()

    def __call__(self, req: FakeRequest) -> Reply:
        if req.index_in_run >= self.n and not self.killed.is_set() and self.server is not None:
            self.killed.set()
            # set_down waits on the server's loop, where this responder runs: call it from a thread.
            threading.Thread(target=self.server.set_down, kwargs={"mode": "drop"}, daemon=True).start()
        return self.inner(req)


def _dataset(path: Path) -> Path:
    letters = "ABCD"
    with path.open("w") as fh:
        for i in range(ITEMS):
            options = {x: f"option {x.lower()} of question {i}" for x in letters}
            row = {"id": f"q{i}", "question": f"Question {i}: which option?", "options": options}
            fh.write(json.dumps({**row, "answer": letters[i % 4]}) + "\n")
    return path


def _spec(urls: list[str], data: Path) -> dict[str, Any]:
    return {
        "name": "faults",
        "models": {"m": {"model": "fake-model", "mode": "completion"}},
        "endpoints": [
            {"name": f"ep{i}", "base_url": u, "timeout_s": TIMEOUT_S, "max_concurrency": 8}
            for i, u in enumerate(urls)
        ],
        "llm": {
            "cache": {"enabled": False},
            "retry": {"max_attempts": 10, "initial_backoff_s": 0.01, "max_backoff_s": 0.05},
            "health": {"failures_to_eject": 3, "probe_after_s": 0.2},
        },
        "dataset": {"path": str(data), "fields": {"id": "id"}},
        "run": {"concurrency": 8},
        "nodes": {
            "generate": {"type": "generator", "models": ["m"], "template": "mcq_cot", "samples": 2},
            "check": {"type": "verifier", "verifiers": [{"check": "mcq_answer"}]},
            "judge": {"type": "verifier", "verifiers": [{"judge": "m", "structured": False}]},
        },
        "edges": [{"from": "generate", "to": "check"}, {"from": "check", "to": "judge", "when": "passed"}],
    }


@pytest.mark.slow
def test_run_completes_through_faults_and_a_dead_endpoint(tmp_path: Path) -> None:
    survivor, doomed = Chaos("survivor"), Chaos("doomed")
    # Routing decides how many calls reach each endpoint (22 to 62 of ~100 here, depending on
    # ejections and load): die early enough that a run always reaches the point of death.
    dying = DiesAfter(doomed, n=8)
    with FakeOpenAIServer(survivor) as live, FakeOpenAIServer(dying) as dead:
        dying.server = dead
        result = medloom.run(
            _spec([live.base_url, dead.base_url], _dataset(tmp_path / "items.jsonl")),
            runs_dir=tmp_path / "runs",
        )
        rejected_while_down = dead.rejected_count
    assert dying.killed.is_set() and rejected_while_down > 0  # calls did hit the dead endpoint
    served = survivor.served + doomed.served
    assert all(served[f] > 0 for f in Chaos.FAULTS), served
    assert 0.2 <= sum(served[f] for f in Chaos.FAULTS) / served.total() <= 0.5, served  # about 30%

    report = result.report
    assert report.items == ITEMS
    assert report.kept + report.rejected + report.failed == ITEMS
    assert report.failed <= ITEMS // 8, report  # a few may exhaust their attempts

    ends = [
        json.loads(line)
        for line in (result.run_dir / "trajectories.jsonl").read_text().splitlines()
        if '"type":"item_end"' in line
    ]
    assert sorted(e["item_id"] for e in ends) == sorted(f"q{i}" for i in range(ITEMS))
    by_status = Counter(e["status"] for e in ends)
    expected = Counter(kept=report.kept, rejected=report.rejected, failed=report.failed)
    assert by_status == +expected  # unary + drops zero counts
    for end in ends:
        if end["status"] != "kept":
            assert end["reason"] and end["node"], end  # which node, and why
    assert len(result.dataset) == report.rows
    assert {r["item_id"] for r in result.dataset} == {e["item_id"] for e in ends if e["status"] == "kept"}
