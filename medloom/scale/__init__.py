"""Scale-out on a Ray cluster: sharded runs (:mod:`~medloom.scale.driver`), a cluster-wide concurrency
cap per endpoint (:mod:`~medloom.scale.limits`) and vLLM replicas as Ray actors
(:mod:`~medloom.scale.serve`). See docs/scale.md.

Ray is an optional extra (``pip install 'medloom[ray]'``): nothing here imports it until it is used,
and ``import medloom`` never does.
"""

from __future__ import annotations

import os
from types import ModuleType

from medloom.core.errors import ConfigError

RAY_EXTRA_HINT = "pip install 'medloom[ray]'"


def require_ray() -> ModuleType:
    """The ``ray`` module, with usage statistics off (runs work offline); a :class:`ConfigError`
    naming the extra to install when Ray is missing."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"the Ray backend needs Ray, which is not installed: {RAY_EXTRA_HINT} "
            "(or drop --backend ray / --ray to run on this machine)"
        ) from None
    return ray


def connect(address: str | None = None, **init_kwargs: object) -> ModuleType:
    """Ray, connected: to ``address`` or ``$RAY_ADDRESS`` when given, else a local cluster started
    here (and stopped when this process exits). Already connected: left as it is."""
    ray = require_ray()
    if not ray.is_initialized():
        if address in (None, "local") and not os.environ.get("RAY_ADDRESS"):
            # A local cluster shares the machine with the servers it calls: Ray's memory monitor
            # would kill shard workers for memory that vLLM holds.
            os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")
        ray.init(address=address, include_dashboard=False, log_to_driver=False, **init_kwargs)
    return ray
