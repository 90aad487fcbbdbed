"""Fixtures for the serving tests: the real vLLM fixtures, and a fake vLLM for fast lifecycle tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from medloom.serving import ServerConfig
from medloom.serving import vllm_server as server_module

__all__ = ["fake_vllm"]

# A stand-in for `python -m vllm.entrypoints.openai.api_server`, put first on PYTHONPATH. The
# model name picks a behaviour: ok, crash, hang, stubborn (ignores SIGTERM). Like vLLM, it
# spawns an "engine" child in its process group; it appends its own and the child's pids to
# $FAKE_VLLM_PIDFILE.
FAKE_API_SERVER = r"""
import argparse, json, os, signal, subprocess, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--model")
parser.add_argument("--host")
parser.add_argument("--port", type=int)
parser.add_argument("--served-model-name")
args, unknown = parser.parse_known_args()
mode = args.model
print(f"fake vllm: mode={mode} args={sys.argv[1:]}", flush=True)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
engine = subprocess.Popen([sys.executable, "-c", (
    "import signal, time\n"
    + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if mode == "stubborn" else "")
    + "while True: time.sleep(1)\n")])
with open(os.environ["FAKE_VLLM_PIDFILE"], "a") as f:
    f.write(f"{os.getpid()}\n{engine.pid}\n")
if mode == "crash":
    for i in range(60):
        print(f"loading line {i}", flush=True)
    print("RuntimeError: the fake engine failed to load the model", flush=True)
    sys.exit(3)
if mode == "hang":
    while True:
        time.sleep(1)

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = b""
        elif self.path == "/v1/models":
            body = json.dumps({"object": "list", "data": [{"id": args.served_model_name}]}).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass

ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
"""


@pytest.fixture
def fake_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., ServerConfig]:
    """A factory of ServerConfigs that launch the fake vLLM; ``.pidfile`` lists what it spawned."""
    root = tmp_path / "fakevllm"
    package = root / "vllm" / "entrypoints" / "openai"
    package.mkdir(parents=True)
    for directory in (root / "vllm", root / "vllm" / "entrypoints", package):
        (directory / "__init__.py").write_text("")
    (package / "api_server.py").write_text(FAKE_API_SERVER)
    pidfile = tmp_path / "pids.txt"
    pidfile.touch()
    monkeypatch.setattr(server_module, "vllm_importable", lambda python=None: True)

    def make(mode: str = "ok", **overrides: Any) -> ServerConfig:
        options: dict[str, Any] = {
            "model": mode,
            "device": "cpu",
            "env": {"PYTHONPATH": str(root), "FAKE_VLLM_PIDFILE": str(pidfile)},
            "log_path": tmp_path / f"{mode}.log",
            "ready_timeout_s": 30.0,
        }
        options.update(overrides)
        return ServerConfig(**options)

    make.pidfile = pidfile  # type: ignore[attr-defined]
    make.root = root  # type: ignore[attr-defined]
    return make
