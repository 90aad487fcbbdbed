"""vLLM replicas as Ray actors (``medloom serve --ray``): one actor per GPU or tensor-parallel group,
placed by Ray's GPU accounting (Ray sets each actor's ``CUDA_VISIBLE_DEVICES``), each running the
supervised :class:`~medloom.serving.server.VLLMServer` on its node. The driver waits for every
replica's health, hands their URLs (and a pin per URL to the node serving it) to a run, and stops
them with it.

``command`` replaces vLLM by any OpenAI-compatible server command (``{host}`` and ``{port}`` are
filled in on the node): a fake server in tests, another engine elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

import httpx

from medloom.serving import supervision
from medloom.serving.errors import ServerStartError
from medloom.serving.layout import devices_per_replica, parallel_sizes
from medloom.serving.server import ServerConfig, VLLMServer, free_port, lift_into


@dataclass
class RayServeSpec:
    """What to serve on the cluster."""

    config: ServerConfig
    """The server every replica runs (its host and port are chosen on the replica's node)."""
    replicas: int = 1
    gpus_per_replica: int | None = None
    """GPUs each replica asks Ray for: default TP × PP from the vLLM args on GPU, 0 on CPU."""
    cpus_per_replica: float = 1.0
    command: list[str] | None = None
    """Another server command instead of vLLM (``{host}``, ``{port}`` filled in)."""
    extra_resources: dict[str, float] = field(default_factory=dict)

    def gpus(self) -> int:
        if self.gpus_per_replica is not None:
            return self.gpus_per_replica
        if self.command is not None or self.config.device == "cpu":
            return 0
        return devices_per_replica(parallel_sizes(self.config.extra_args), None)

    def actor_options(self) -> dict[str, Any]:
        return {
            "num_gpus": self.gpus(),
            "num_cpus": self.cpus_per_replica,
            "resources": dict(self.extra_resources),
            "max_restarts": 0,
        }


def dry_run_plan(spec: RayServeSpec) -> dict[str, Any]:
    """What ``medloom serve --ray`` would start: per replica its Ray resources and command line
    (the port is picked on the node, so it shows as ``{port}``). Starts nothing, needs no cluster."""
    if spec.command is not None:
        command = list(spec.command)
    else:
        device = spec.config.device if spec.config.device != "auto" else "gpu"
        command = _vllm_command(replace(spec.config, host="{host}", port=1, device=device))
        command[command.index("--port") + 1] = "{port}"
    return {
        "backend": "ray",
        "model": spec.config.model,
        "served_model_name": spec.config.served_model_name,
        "replicas": [
            {"index": i, "resources": spec.actor_options(), "command": command} for i in range(spec.replicas)
        ],
    }


def serve_until_stopped(servers: RayServers, out: Any = print) -> None:
    """Print the replicas' URLs and the run flags that use them, then block until Ctrl-C/SIGTERM or
    until a replica dies; the replicas are stopped either way."""
    import signal
    import threading

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        out("serving on the Ray cluster:")
        for url, resource in servers.pins.items():
            out(f"  {url}  (node resource {resource})")
        flags = " ".join(f"--endpoint {u} --pin {u}={r}" for u, r in servers.pins.items())
        out(f"run on them: medloom run CONFIG --backend ray --shards {len(servers.urls)} {flags}")
        out("press Ctrl-C to stop")
        while not stop.wait(2.0):
            if not all(servers.alive()):
                raise ServerStartError("a replica's server exited; stopping the others")
    finally:
        servers.stop()
        for sig, old in previous.items():
            signal.signal(sig, old)


def _vllm_command(config: ServerConfig) -> list[str]:
    """vLLM's command line for ``config`` without probing a device (the driver may have none)."""
    server = VLLMServer.__new__(VLLMServer)
    entry = "serve" if config.entry_point == "auto" else config.entry_point
    server.config = replace(lift_into(config), entry_point=entry)
    return server.command()


class ReplicaActor:
    """One server on one node (a Ray actor: ``ray.remote(ReplicaActor)``)."""

    def __init__(self, spec: RayServeSpec):
        self.spec = spec
        self.server: VLLMServer | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> dict[str, str]:
        """Start the server, wait until it answers ``/v1/models``; its URL and node resource."""
        import ray

        host = ray.util.get_node_ip_address()
        port = free_port(host)
        if self.spec.command is None:
            config = replace(self.spec.config, host=host, port=port)
            self.server = VLLMServer(config)
            self.server.start().wait_ready()
            self.url = self.server.base_url
        else:
            argv = [part.format(host=host, port=port) for part in self.spec.command]
            self.proc = subprocess.Popen(  # dies with this actor, like a supervised vLLM
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=supervision.pdeathsig_preexec(os.getpid()),
            )
            self.url = f"http://{host}:{port}/v1"
            self._wait_healthy(self.spec.config.ready_timeout_s)
        return {"url": self.url, "node_resource": f"node:{host}", "pid": str(os.getpid())}

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    code = self.proc.returncode
                    raise ServerStartError(f"the server command exited with {code}: {self.spec.command}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/models").status_code == 200:
                        return
                time.sleep(0.2)
        raise ServerStartError(f"{self.url} did not answer /v1/models within {timeout:.0f} s")

    def alive(self) -> bool:
        if self.server is not None:
            return self.server.is_alive()
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class RayServers:
    """The replicas of a :class:`RayServeSpec` on the cluster; ``with RayServers(spec) as s:`` starts
    them, waits for their health and stops them on exit. :attr:`urls` go to a run's endpoints and
    :attr:`pins` to its :class:`~medloom.scale.driver.ShardOptions` (each URL's node)."""

    def __init__(self, spec: RayServeSpec, address: str | None = None):
        self.spec = spec
        self.address = address
        self.actors: list[Any] = []
        self.replicas: list[dict[str, str]] = []

    @property
    def urls(self) -> list[str]:
        return [r["url"] for r in self.replicas]

    @property
    def pins(self) -> dict[str, str]:
        return {r["url"]: r["node_resource"] for r in self.replicas}

    def start(self) -> RayServers:
        from medloom.scale import connect

        ray = connect(self.address)
        remote = ray.remote(ReplicaActor).options(**self.spec.actor_options())
        self.actors = [remote.remote(self.spec) for _ in range(self.spec.replicas)]
        try:
            self.replicas = ray.get([actor.start.remote() for actor in self.actors])
        except BaseException:
            self.stop()
            raise
        return self

    def alive(self) -> list[bool]:
        import ray

        return list(ray.get([actor.alive.remote() for actor in self.actors]))

    def stop(self) -> None:
        import ray

        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.get(actor.stop.remote(), timeout=30)
            ray.kill(actor)
        self.actors = []

    def __enter__(self) -> RayServers:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __iter__(self) -> Iterator[str]:
        return iter(self.urls)
