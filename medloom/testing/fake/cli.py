"""Run a fake server in its own process (for subprocess tests and benchmarks)::

python -m medloom.testing.fake --port 0 --script MODULE:CALLABLE --port-file PATH
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from medloom.testing.fake.responders import Responder, echo_responder
from medloom.testing.fake.server import FakeOpenAIServer


def load_responder(spec: str) -> Responder:
    """``MODULE:CALLABLE`` (or ``path/to/file.py:CALLABLE``) → the responder object."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--script must be MODULE:CALLABLE, got {spec!r}")
    if module_name.endswith(".py") or os.sep in module_name:
        path = Path(module_name).resolve()
        mod_spec = importlib.util.spec_from_file_location(path.stem, path)
        if mod_spec is None or mod_spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[path.stem] = module
        mod_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    obj = getattr(module, attr)
    if not callable(obj):
        raise TypeError(f"{spec} is not callable")
    return cast(Responder, obj)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a fake server until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m medloom.testing.fake", description="An OpenAI-compatible fake server."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = OS-chosen")
    parser.add_argument("--script", default=None, help="MODULE:CALLABLE or path/file.py:CALLABLE responder")
    parser.add_argument("--port-file", default=None, help="write the bound port here")
    parser.add_argument("--models", default="fake-model", help="comma-separated model names")
    args = parser.parse_args(argv)

    responder = load_responder(args.script) if args.script else echo_responder
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server = FakeOpenAIServer(responder, models=models, host=args.host, port=args.port)
    server.start()
    try:
        if args.port_file:
            tmp = f"{args.port_file}.tmp{os.getpid()}"
            Path(tmp).write_text(f"{server.port}\n")
            os.replace(tmp, args.port_file)  # atomic: readers never see a partial file
        print(f"FakeOpenAIServer listening on {server.base_url}", flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
    return 0
