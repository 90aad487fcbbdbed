"""``medloom serve``: plan the replicas, print the plan (``--dry-run``) or start and supervise them."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from medloom.serving.errors import ServingError
from medloom.serving.group import ServerGroup
from medloom.serving.install import probe_install
from medloom.serving.model_prep import DEFAULT_MODEL_NAME, default_model_dir, prepare_default_model
from medloom.serving.server import Device, ServerConfig, default_ready_timeout, masked

DEFAULT_PORT = 8000
_PASSED_THROUGH = ("CUDA_", "HF_", "HUGGING_FACE_", "VLLM_", "NCCL_", "TRANSFORMERS_", "RAY_")
"""Inherited variables a dry run shows (vLLM, the hub, CUDA and NCCL read them)."""


@dataclass
class ServeOptions:
    """What ``medloom serve`` was asked for, beyond the model, device, port and replicas."""

    host: str = "127.0.0.1"
    served_model_name: str | None = None
    gpus_per_replica: int | None = None
    ready_timeout_s: float | None = None
    """None: ``MEDLOOM_VLLM_READY_TIMEOUT`` or 600 s."""
    dry_run: bool = False
    python: str | None = None
    """The interpreter that runs vLLM (default: this one)."""
    tools: str | None = None
    """Serve native tool calls with this vLLM tool-call parser (``auto``: by the model's family)."""


def split_model_argument(model: str | None, extra_args: list[str]) -> tuple[str | None, list[str]]:
    """``medloom serve --gpu -- --max-model-len 4096`` hands ``--max-model-len`` over as the MODEL:
    a MODEL starting with ``-`` is the first vLLM argument, and the default model is served."""
    if model is not None and model.startswith("-"):
        return None, [model, *extra_args]
    return model, extra_args


def serve_forever(group: ServerGroup, *, out: Callable[[str], None] = print) -> None:
    """Print the endpoints, block until SIGINT or SIGTERM, then stop the group.

    Raises :class:`ServerExitedError` (after stopping the others) if a server exits on its own.
    """
    stop = threading.Event()
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    try:
        names = sorted({server.model_name for server in group.servers})
        out(f"serving {', '.join(names)} on:")
        for url in group.endpoints:
            out(f"  {url}")
        out("press Ctrl-C to stop")
        while not stop.wait(1.0):
            group.check_alive()
        out(f"received {signal.Signals(received[0]).name}; stopping")
    finally:
        group.stop()
        for sig, old in previous.items():
            signal.signal(sig, old)


def dry_run_plan(group: ServerGroup) -> dict[str, Any]:
    """What starting ``group`` would run: per replica its URL, port, devices, command line and the
    environment that matters (what medloom sets, and inherited CUDA/HF/vLLM/NCCL variables; secrets
    masked)."""
    first = group.servers[0].config
    install = probe_install(first.python)
    replicas = []
    for index, server in enumerate(group.servers):
        changes = server.environment_changes()
        env = {k: v for k, v in server.environment().items() if k in changes or k.startswith(_PASSED_THROUGH)}
        replicas.append(
            {
                "index": index,
                "url": server.base_url,
                "port": server.config.port,
                "devices": list(server.config.devices) if server.config.devices is not None else None,
                "command": server.command(),
                "env": masked(dict(sorted(env.items()))),
            }
        )
    return {
        "model": first.model,
        "served_model_name": first.served_model_name,
        "device": first.device,
        "ready_timeout_s": first.ready_timeout_s,
        "vllm": {
            "python": install.python,
            "installed": install.importable,
            "distribution": install.distribution,
            "version": install.version,
            "entry_point": first.entry_point,
        },
        "replicas": replicas,
    }


def run_serve_command(
    model: str | None,
    device: str,
    port: int | None,
    replicas: int,
    extra_args: list[str],
    *,
    options: ServeOptions | None = None,
    out: Callable[[str], None] = print,
    err: Callable[[str], None] | None = None,
) -> int:
    """``medloom serve``: serve ``model`` (default: the prepared Gemma 3 270M) until interrupted.

    ``port`` None means 8000. Returns the process exit code: 0 after a clean stop (or a printed
    dry run), 1 when planning, preparing or starting failed or a server died, 2 for a bad argument.
    """
    err = err or (lambda msg: print(msg, file=sys.stderr))
    options = options or ServeOptions()
    if device not in ("cpu", "gpu", "auto"):
        err(f"error: --device must be cpu, gpu or auto, not {device!r}")
        return 2
    model, extra_args = split_model_argument(model, extra_args)
    if port is None:  # a vLLM --port after `--` is the first port then
        port = 0 if any(a == "--port" or a.startswith("--port=") for a in extra_args) else DEFAULT_PORT
    try:
        served_name = options.served_model_name
        if model is None:
            if options.dry_run:
                model = str(default_model_dir())
            else:
                out(f"preparing the default model {DEFAULT_MODEL_NAME} (first time only, a few minutes)...")
                model = str(prepare_default_model())
            served_name = served_name or DEFAULT_MODEL_NAME
        timeout = options.ready_timeout_s if options.ready_timeout_s is not None else default_ready_timeout()
        config = ServerConfig(
            model=model,
            served_model_name=served_name,
            host=options.host,
            device=_device(device),
            port=port,
            extra_args=list(extra_args),
            ready_timeout_s=timeout,
            python=options.python or sys.executable,
            tool_call_parser=options.tools,
        )
        group = ServerGroup.replicas(config, replicas, gpus_per_replica=options.gpus_per_replica)
        if options.dry_run:
            out(json.dumps(dry_run_plan(group), indent=2))
            return 0
        out(_starting_message(group, model, timeout))
        group.start()
        for server in group.servers:
            out(f"{server.base_url} ready after {server.ready_after_s or 0:.0f} s (log: {server.log_path})")
        serve_forever(group, out=out)
    except (ServingError, ValueError) as exc:
        err(f"error: {exc}")
        return 1
    except KeyboardInterrupt:  # Ctrl-C while preparing or starting; the servers are already stopped
        err("interrupted")
        return 130
    return 0


def _device(name: str) -> Device:
    return "cpu" if name == "cpu" else "gpu" if name == "gpu" else "auto"


def _starting_message(group: ServerGroup, model: str, timeout: float) -> str:
    n = len(group.servers)
    first = group.servers[0].config
    what = f"starting {n} vLLM server{'s' if n > 1 else ''} for {model}"
    if first.device == "gpu":
        devices = "; ".join(",".join(s.config.devices or ()) for s in group.servers)
        return (
            f"{what} on GPUs {devices} (a first start downloads, loads and compiles: minutes, longer "
            f"for large models; waiting {timeout:.0f} s, and longer while the logs grow)..."
        )
    return f"{what} on the CPU (this takes minutes on CPU; waiting up to {timeout:.0f} s)..."
