"""The README's Python examples and hosted-API command work as written, against the in-process fake
server (the hosted API's fake checks the key it is sent)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from medloom.testing.fake import FakeOpenAIServer, FakeRequest, Reply
from medloom.testing.mcq_student import McqStudent
from tests.helpers import REPO, medloom_cli, only_run, read_report

README = (REPO / "README.md").read_text()
LOCAL_URL = "http://127.0.0.1:8000/v1"
HOSTED_URL = "https://api.example.com/v1"
KEY = "sk-readme-HOSTED-5e8a1c0f"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


def _hosted_command() -> tuple[str, list[str]]:
    """The key variable the README exports and the arguments of its hosted-API `medloom run`."""
    block = next(b for b in re.findall(r"```bash\n(.*?)```", README, re.S) if HOSTED_URL in b)
    lines = re.sub(r"\\\n\s*", " ", block.replace("  ", " ")).splitlines()
    (variable,) = [ln.split()[1].split("=")[0] for ln in lines if ln.strip().startswith("export ")]
    (command,) = [ln for ln in lines if ln.strip().startswith("medloom run")]
    return variable, shlex.split(command)[1:]  # after `medloom`


class HostedApi:
    """An MCQ student (chat: it writes its own "Step 1:") behind a key check: any other key gets
    401, as a hosted API answers."""

    def __init__(self) -> None:
        self.student = McqStudent()
        self.keys: set[str] = set()

    def __call__(self, req: FakeRequest) -> Reply:
        self.keys.add(req.headers.get("Authorization", ""))
        if req.headers.get("Authorization") != f"Bearer {KEY}":
            return Reply.error(401, message="invalid api key")
        reply = self.student(req)
        texts = [reply.texts] if isinstance(reply.texts, str) else list(reply.texts)
        return Reply(texts=[t if t.startswith((" Correct", " Error")) else "Step 1:" + t for t in texts])


def _run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "default"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


def test_readme_python_examples_run_as_written(tmp_path: Path) -> None:
    blocks = _python_blocks()
    assert len(blocks) == 3 and all(LOCAL_URL in b for b in blocks)
    (tmp_path / "configs").symlink_to(REPO / "configs")
    with FakeOpenAIServer(McqStudent()) as srv:
        results = [_run_python(b.replace(LOCAL_URL, srv.base_url), tmp_path) for b in blocks]
        calls = srv.request_count
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "Unclosed" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert calls > 10
    runs = [p for p in (tmp_path / "runs").iterdir() if (p / "run.json").exists()]
    assert len(runs) == 2  # medloom.run(..., limit=10) and await medloom.arun(..., limit=10)
    assert [read_report(r)["items"] for r in runs] == [10, 10]
    assert runs[0].name in results[1].stdout or runs[1].name in results[1].stdout
    traces = re.findall(r"\(('[AB]'|None), [1-9]\)", results[2].stdout)  # (answer, steps) per sample
    assert len(traces) == 3 and "'B'" in traces, results[1].stdout


def test_readme_hosted_api_command_sends_the_key_and_runs(tmp_path: Path) -> None:
    variable, args = _hosted_command()
    api = HostedApi()
    with FakeOpenAIServer(api) as srv:
        args = [srv.base_url if a == HOSTED_URL else a.replace("=NAME", "=fake-model") for a in args]
        result = medloom_cli(*args, "--runs-dir", str(tmp_path / "runs"), "-q", env={variable: KEY})
    assert result.returncode == 0, result.stderr
    assert api.keys == {f"Bearer {KEY}"}
    report = read_report(only_run(tmp_path / "runs"))
    assert report["items"] == 10 and report["failed"] == 0 and report["kept"] >= 1, report
