"""API keys never reach run directories, logs, trajectories or the console, even when a failing
endpoint echoes the request's headers and URL back in its error messages."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import yaml

from medloom.runs.secrets import SecretFilter
from medloom.testing.fake import FakeOpenAIServer, FakeRequest, Reply
from medloom.testing.mcq_student import McqStudent
from tests.helpers import RECIPE, medloom_cli, only_run, read_report

KEY = "sk-medloom-TEST-4f9c2a7e1b3d5f60aa"
KEY_ENV = "MEDLOOM_RELIABILITY_SECRET_KEY"


class LeakyEndpoint:
    """An endpoint whose errors quote the Authorization header (as some proxies do).

    Prompts about "peaked T waves" (one demo item) always get a fatal 400 that quotes the key, so those
    items fail with the echoed error; every other request's first attempt gets a retryable 500
    quoting the header and URL, then the student's answer.
    """

    def __init__(self) -> None:
        self.student = McqStudent()
        self.seen_keys: set[str] = set()

    def __call__(self, req: FakeRequest) -> Reply:
        auth = req.headers.get("Authorization", "")
        self.seen_keys.add(auth)
        echo = f"bad credentials in header 'Authorization: {auth}' for /v1/completions?api_key={KEY}"
        if "peaked T waves" in req.prompt_text:
            return Reply.error(400, message=f"rejected: {echo}")
        if req.attempt == 0:
            return Reply.error(500, message=f"upstream failed: {echo}")
        return self.student(req)


def _recipe(tmp_path: Path, url: str) -> Path:
    data = yaml.safe_load(RECIPE.read_text())
    data["endpoints"] = [{"name": "leaky", "base_url": url, "api_key_env": KEY_ENV}]
    data["dataset"]["path"] = str(RECIPE.parent / data["dataset"]["path"])
    data["llm"] = {
        "retry": {"max_attempts": 3, "initial_backoff_s": 0, "max_backoff_s": 0},
        "health": {"failures_to_eject": 10_000},  # every first attempt fails: keep it in rotation
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_api_key_never_written_even_when_errors_echo_it(tmp_path: Path) -> None:
    responder = LeakyEndpoint()
    runs = tmp_path / "runs"
    with FakeOpenAIServer(responder) as srv:
        recipe = _recipe(tmp_path, srv.base_url)
        result = medloom_cli("run", str(recipe), "--runs-dir", str(runs), "--limit", "8", env={KEY_ENV: KEY})
    assert f"Bearer {KEY}" in responder.seen_keys, "the key was not sent, so nothing was tested"
    assert result.returncode == 3, result.stderr  # the run ended; the "peaked T waves" item failed
    run_dir = only_run(runs)
    report = read_report(run_dir)
    assert report["items"] == 8 and report["failed"] >= 1 and report["kept"] >= 1, report

    # The echoed errors were recorded (redacted), so the test really exercised the error path.
    trajectories = (run_dir / "trajectories.jsonl").read_text()
    assert "bad credentials" in trajectories
    failures = [json.loads(line) for line in trajectories.splitlines() if '"status":"failed"' in line]
    assert failures and all("***" in json.dumps(f) for f in failures)

    assert _files_containing(tmp_path, KEY.encode()) == []
    assert KEY not in result.stdout and KEY not in result.stderr
    # Nor a recognisable part of it (e.g. a JSON-escaped or truncated copy).
    body = KEY.removeprefix("sk-").encode()
    assert _files_containing(tmp_path, body[:16]) == []


def test_log_filter_redacts_tracebacks_and_their_causes(tmp_path: Path) -> None:
    handler = logging.FileHandler(tmp_path / "run.log", encoding="utf-8")
    handler.addFilter(SecretFilter([KEY]))
    logger = logging.getLogger("medloom.test_secrets")
    logger.addHandler(handler)
    try:
        try:
            try:
                raise RuntimeError(f"server said: bad key {KEY}")
            except RuntimeError as cause:
                raise ValueError("call failed") from cause
        except ValueError:
            logger.exception("item failed using %s", KEY)
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = (tmp_path / "run.log").read_text()
    assert "RuntimeError: server said: bad key ***" in text and "item failed using ***" in text
    assert KEY not in text
