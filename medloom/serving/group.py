"""Several vLLM servers (replicas) planned, started and stopped together."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from types import TracebackType

from medloom.serving.devices import detect_device, visible_devices
from medloom.serving.errors import DeviceError, LayoutError
from medloom.serving.install import install_hint, probe_install
from medloom.serving.layout import (
    assign_devices,
    devices_per_replica,
    parallel_sizes,
    replica_ports,
)
from medloom.serving.server import Device, ServerConfig, VLLMServer, lift_into

logger = logging.getLogger(__name__)


def plan_replicas(config: ServerConfig, n: int, *, gpus_per_replica: int | None = None) -> list[ServerConfig]:
    """``n`` copies of ``config``: consecutive ports from ``config.port`` (or free ports), and on
    GPU a contiguous slice of the visible devices each (TP × PP × DP of them, or
    ``gpus_per_replica``).

    Raises :class:`DeviceError` when ``--gpu`` meets vLLM's CPU build or no visible device, and
    :class:`LayoutError` (with the arithmetic) when the replicas do not fit the devices.
    """
    if n < 1:
        raise LayoutError(f"--replicas must be at least 1, not {n}")
    config = lift_into(config)
    device: Device = detect_device(config.python) if config.device == "auto" else config.device
    ports = replica_ports(config.port, n)
    slices: list[tuple[str, ...] | None] = [config.devices] * n
    extra_args = list(config.extra_args)
    if device == "gpu":
        slices, extra_args = _gpu_slices(config, n, gpus_per_replica)
    elif gpus_per_replica is not None:
        raise LayoutError("--gpus-per-replica needs --gpu")
    elif n > 1:
        logger.warning("%d CPU replicas share %s cores; one replica is usually faster", n, os.cpu_count())
    configs = []
    for i in range(n):
        log_path = config.log_path
        if log_path is not None and n > 1:
            log_path = log_path.with_name(f"{log_path.stem}-{i}{log_path.suffix}")
        configs.append(
            replace(
                config,
                device=device,
                port=ports[i],
                devices=slices[i],
                log_path=log_path,
                extra_args=list(extra_args),
                env=dict(config.env),
            )
        )
    return configs


def _gpu_slices(
    config: ServerConfig, n: int, gpus_per_replica: int | None
) -> tuple[list[tuple[str, ...] | None], list[str]]:
    install = probe_install(config.python)
    if install.build == "cpu":
        raise DeviceError(
            f"--gpu, but the installed vLLM is the CPU build ({install.describe()}): it would start a "
            f"CPU server. Serve on the CPU with --cpu, or {install_hint('gpu')}"
        )
    if config.devices is not None:
        ids, source = list(config.devices), f"ServerConfig.devices={','.join(config.devices)}"
    else:
        listing = visible_devices()
        ids, source = listing.ids, listing.source
    if not ids and config.device == "auto" and n == 1 and gpus_per_replica is None:
        return [None], list(config.extra_args)  # vLLM sees the GPUs: leave their visibility alone
    if not ids:
        raise DeviceError(
            f"--gpu, but no GPU is visible ({source}). Check `nvidia-smi -L`; if CUDA sees GPUs "
            "that nvidia-smi does not list, name them with CUDA_VISIBLE_DEVICES=0,1,...; or serve "
            "on the CPU with --cpu"
        )
    sizes = parallel_sizes(config.extra_args)
    per = devices_per_replica(sizes, gpus_per_replica)
    extra_args = list(config.extra_args)
    if gpus_per_replica is not None and sizes.per_replica == 1 and per > 1:
        extra_args = ["--tensor-parallel-size", str(per), *extra_args]
    mig = any(i.startswith("MIG-") for i in ids)
    slices = assign_devices(ids, n, per, source=source, mig=mig)
    return [tuple(s) for s in slices], extra_args


class ServerGroup:
    """Several vLLM servers (replicas) started and stopped together."""

    def __init__(self, configs: Sequence[ServerConfig]):
        if not configs:
            raise ValueError("a ServerGroup needs at least one ServerConfig")
        self.servers = [VLLMServer(cfg) for cfg in configs]

    @classmethod
    def replicas(cls, config: ServerConfig, n: int, *, gpus_per_replica: int | None = None) -> ServerGroup:
        """``n`` replicas of ``config`` laid out by :func:`plan_replicas`."""
        return cls(plan_replicas(config, n, gpus_per_replica=gpus_per_replica))

    @property
    def endpoints(self) -> list[str]:
        """The base URLs, e.g. ``["http://127.0.0.1:8000/v1"]``."""
        return [server.base_url for server in self.servers]

    def start(self) -> ServerGroup:
        """Launch every server, then wait for all of them concurrently; on any failure stop all."""
        try:
            for server in self.servers:
                server.start()
            with ThreadPoolExecutor(max_workers=len(self.servers)) as pool:
                futures = [pool.submit(server.wait_ready) for server in self.servers]
                errors = [f.exception() for f in futures]
        except BaseException:
            self.stop()
            raise
        failed = [e for e in errors if e is not None]
        if failed:
            self.stop()
            raise failed[0]
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """Stop every server (concurrently)."""
        with ThreadPoolExecutor(max_workers=len(self.servers)) as pool:
            list(pool.map(lambda s: s.stop(timeout), self.servers))

    def check_alive(self) -> None:
        """Raise :class:`ServerExitedError` for the first server that has exited."""
        for server in self.servers:
            server.check_alive()

    def __enter__(self) -> ServerGroup:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
