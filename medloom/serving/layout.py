"""Replica layout: what vLLM flags say about each replica, its ports and its slice of the devices.

Pure arithmetic over argument lists and device ids; nothing here starts or probes anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from medloom.serving.errors import LayoutError

_SIZE_FLAGS = {
    "tensor": ("--tensor-parallel-size", "-tp"),
    "pipeline": ("--pipeline-parallel-size", "-pp"),
    "data": ("--data-parallel-size", "-dp"),
}
_OWN_FLAGS = {
    "--served-model-name": "served_model_name",
    "--port": "port",
    "--host": "host",
    "--api-key": "api_key",
    "--model": "model",
}
"""vLLM flags medloom sets itself; given after ``--`` they are lifted into medloom's options, so the
readiness probe asks the right port, name and key."""


@dataclass(frozen=True)
class ParallelSizes:
    """vLLM's parallel sizes for one replica: it needs ``tensor × pipeline × data`` devices."""

    tensor: int = 1
    pipeline: int = 1
    data: int = 1

    @property
    def per_replica(self) -> int:
        return self.tensor * self.pipeline * self.data

    def formula(self) -> str:
        """``TP 4 × PP 1``: the factors that are set (always TP)."""
        parts = [f"TP {self.tensor}"]
        if self.pipeline > 1:
            parts.append(f"PP {self.pipeline}")
        if self.data > 1:
            parts.append(f"DP {self.data}")
        return " × ".join(parts)


@dataclass
class LiftedFlags:
    """The flags medloom owns, taken out of a vLLM argument list, and the arguments left."""

    rest: list[str]
    values: dict[str, str] = field(default_factory=dict)
    """Option name (``served_model_name``, ``port``, ``host``, ``api_key``, ``model``) → value."""


def _split_flag(arg: str) -> tuple[str, str | None]:
    name, sep, value = arg.partition("=")
    return (name, value) if sep and name.startswith("-") else (arg, None)


def lift_own_flags(args: Sequence[str]) -> LiftedFlags:
    """Take ``--served-model-name``, ``--port``, ``--host``, ``--api-key`` and ``--model`` out of ``args``.

    Raises :class:`LayoutError` for a flag without a value or a second served name.
    """
    rest: list[str] = []
    values: dict[str, str] = {}
    i = 0
    while i < len(args):
        name, value = _split_flag(args[i])
        option = _OWN_FLAGS.get(name)
        if option is None:
            rest.append(args[i])
            i += 1
            continue
        if value is None:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise LayoutError(f"vLLM flag {name} needs a value")
            value, i = args[i + 1], i + 2
        else:
            i += 1
        if option == "served_model_name" and i < len(args) and not args[i].startswith("-"):
            raise LayoutError(
                f"{name} got several names ({value} {args[i]} ...); medloom serves one name per "
                "server: pass one with --served-model-name NAME"
            )
        values[option] = value
    return LiftedFlags(rest=rest, values=values)


def parallel_sizes(args: Sequence[str]) -> ParallelSizes:
    """The TP, PP and DP sizes in a vLLM argument list (1 where not given)."""
    sizes: dict[str, int] = {}
    for i, arg in enumerate(args):
        name, value = _split_flag(arg)
        for key, names in _SIZE_FLAGS.items():
            if name not in names:
                continue
            raw = value if value is not None else (args[i + 1] if i + 1 < len(args) else "")
            try:
                sizes[key] = int(raw)
            except ValueError:
                raise LayoutError(f"vLLM flag {name} needs a whole number, not {raw!r}") from None
            if sizes[key] < 1:
                raise LayoutError(f"vLLM flag {name} must be at least 1, not {sizes[key]}")
    return ParallelSizes(**sizes)


def devices_per_replica(sizes: ParallelSizes, gpus_per_replica: int | None) -> int:
    """How many devices each replica gets: ``--gpus-per-replica`` or TP × PP × DP (they must agree)."""
    if gpus_per_replica is None:
        return sizes.per_replica
    if gpus_per_replica < 1:
        raise LayoutError(f"--gpus-per-replica must be at least 1, not {gpus_per_replica}")
    if sizes.per_replica > 1 and gpus_per_replica != sizes.per_replica:
        raise LayoutError(
            f"--gpus-per-replica {gpus_per_replica} does not match the vLLM flags: "
            f"{sizes.formula()} = {sizes.per_replica} devices per replica; drop one of them"
        )
    return gpus_per_replica


def assign_devices(
    device_ids: Sequence[str], replicas: int, per_replica: int, *, source: str, mig: bool = False
) -> list[list[str]]:
    """Contiguous slices of ``device_ids``, ``per_replica`` each, for ``replicas`` servers.

    Raises :class:`LayoutError` with the arithmetic when they do not fit.
    """
    if replicas < 1:
        raise LayoutError(f"--replicas must be at least 1, not {replicas}")
    needed = replicas * per_replica
    if needed > len(device_ids):
        raise LayoutError(
            f"{replicas} replica{'s' if replicas > 1 else ''} × {per_replica} device"
            f"{'s' if per_replica > 1 else ''} each = {needed} devices, but {len(device_ids)} "
            f"{'is' if len(device_ids) == 1 else 'are'} visible ({source}); use "
            f"--replicas {max(1, len(device_ids) // per_replica)} or fewer devices per replica"
        )
    if mig and per_replica > 1:
        raise LayoutError(
            f"{per_replica} devices per replica, but the devices are MIG slices ({source}) and a CUDA "
            "process can use only one MIG slice: serve with tensor and pipeline parallel size 1"
        )
    return [list(device_ids[i * per_replica : (i + 1) * per_replica]) for i in range(replicas)]


def replica_ports(first: int, replicas: int) -> list[int]:
    """Consecutive ports from ``first`` (0: each replica picks a free port later)."""
    if first and first + replicas - 1 > 65535:
        raise LayoutError(f"ports {first}..{first + replicas - 1} go past 65535; pick a lower --port")
    return [first + i if first else 0 for i in range(replicas)]
