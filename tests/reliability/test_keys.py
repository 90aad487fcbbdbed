"""API keys with `--endpoint`: the config's key variable is kept, `--api-key-env` gives one, a key a
model echoes in a successful completion is never written, and a missing key variable is one line."""

from __future__ import annotations

from pathlib import Path

import yaml

from medloom.testing.fake import FakeOpenAIServer, FakeRequest, Reply
from medloom.testing.mcq_student import McqStudent
from tests.helpers import RECIPE, medloom_cli, only_run, read_report

KEY = "sk-medloom-ECHO-7d1e9b3c5a2f4068"
KEY_ENV = "MEDLOOM_TEST_ECHOED_KEY"


class EchoingModel:
    """An MCQ student whose reasoning quotes the Authorization header it was sent (as a model
    shown its own request, or a misbehaving proxy, might)."""

    def __init__(self) -> None:
        self.student = McqStudent()
        self.seen: set[str] = set()

    def __call__(self, req: FakeRequest) -> Reply:
        auth = req.headers.get("Authorization", "")
        self.seen.add(auth)
        reply = self.student(req)
        texts = [reply.texts] if isinstance(reply.texts, str) else list(reply.texts)
        echoed = [t.replace("narrow the options.", f"narrow the options (sent with {auth}).") for t in texts]
        return Reply(texts=echoed)


def _recipe(tmp_path: Path, endpoints: list[dict[str, object]] | None) -> Path:
    data = yaml.safe_load(RECIPE.read_text())
    if endpoints is not None:
        data["endpoints"] = endpoints
    data["dataset"]["path"] = str(RECIPE.parent / data["dataset"]["path"])
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_endpoint_keeps_the_configs_key_and_an_echoed_key_is_never_written(tmp_path: Path) -> None:
    model = EchoingModel()
    runs = tmp_path / "runs"
    configured = [{"name": "api", "base_url": "https://api.example.invalid/v1", "api_key_env": KEY_ENV}]
    recipe = _recipe(tmp_path, configured)
    with FakeOpenAIServer(model) as srv:
        result = medloom_cli(
            "run", str(recipe), "--endpoint", srv.base_url, "--runs-dir", str(runs), "--limit", "4",
            env={KEY_ENV: KEY},
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert model.seen == {f"Bearer {KEY}"}, "--endpoint dropped the config's api_key_env"
    run_dir = only_run(runs)
    assert read_report(run_dir)["kept"] >= 1
    rows = (run_dir / "data.jsonl").read_text()
    assert "sent with Bearer ***" in rows, "the echo did not reach a kept row, so nothing was tested"
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["endpoints"][0]["api_key_env"] == KEY_ENV
    assert _files_containing(tmp_path, KEY.encode()) == []  # rows, parquet, arrow, trajectories, cache
    assert KEY not in result.stdout + result.stderr


def test_api_key_env_gives_the_key_of_an_endpoint_given_alone(tmp_path: Path) -> None:
    model = EchoingModel()
    recipe = _recipe(tmp_path, None)
    with FakeOpenAIServer(model) as srv:
        result = medloom_cli(
            "run", str(recipe), "--endpoint", srv.base_url, "--api-key-env", KEY_ENV,
            "--runs-dir", str(tmp_path / "runs"), "--limit", "1", "-q",
            env={KEY_ENV: KEY},
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert model.seen == {f"Bearer {KEY}"}


def test_a_missing_key_variable_is_one_line_naming_it_and_the_endpoint(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, [{"name": "api", "base_url": "http://127.0.0.1:9/v1", "api_key_env": KEY_ENV}])
    result = medloom_cli("run", str(recipe), "--runs-dir", str(tmp_path / "runs"), env={KEY_ENV: ""})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert KEY_ENV in lines[0] and "'api' (http://127.0.0.1:9/v1)" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
