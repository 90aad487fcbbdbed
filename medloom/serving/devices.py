"""Which GPUs a server may use, and which device ``--device auto`` means.

The device list comes from an inherited ``CUDA_VISIBLE_DEVICES`` (Slurm, a shared box: it is
respected, never overwritten by indices from 0) or else from ``nvidia-smi -L``: one entry per GPU
(its index), or per MIG slice (its ``MIG-…`` UUID, the only way CUDA can select a slice).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from medloom.serving.install import probe_install, vllm_platform

logger = logging.getLogger(__name__)

_GPU_LINE = re.compile(r"^GPU (?P<index>\d+): (?P<name>.*?)(?: \(UUID: (?P<uuid>[^)]+)\))?\s*$")
_MIG_LINE = re.compile(r"^\s+MIG (?P<profile>\S+)\s+Device\s+(?P<index>\d+): \(UUID: (?P<uuid>[^)]+)\)")
_NO_DEVICES = {"", "-1", "NoDevFiles", "none", "void"}


@dataclass(frozen=True)
class GPUDevice:
    """One device a server can be given."""

    id: str
    """What goes into ``CUDA_VISIBLE_DEVICES``: an index (``3``) or a UUID (``MIG-…``, ``GPU-…``)."""
    label: str = ""
    mig: bool = False


@dataclass(frozen=True)
class DeviceList:
    """The devices medloom may hand out, and where the list came from (for messages)."""

    devices: tuple[GPUDevice, ...]
    source: str

    @property
    def ids(self) -> list[str]:
        return [device.id for device in self.devices]

    def __len__(self) -> int:
        return len(self.devices)


def parse_nvidia_smi_list(text: str) -> list[GPUDevice]:
    """The devices in ``nvidia-smi -L`` output: a GPU's MIG slices replace the GPU itself."""
    gpus: list[tuple[GPUDevice, list[GPUDevice]]] = []
    for line in text.splitlines():
        if match := _GPU_LINE.match(line):
            gpu = GPUDevice(id=match["index"], label=f"GPU {match['index']}: {match['name']}")
            gpus.append((gpu, []))
        elif (match := _MIG_LINE.match(line)) and gpus:
            parent = gpus[-1][0]
            label = f"{parent.label.split(':')[0]} MIG {match['profile']} device {match['index']}"
            gpus[-1][1].append(GPUDevice(id=match["uuid"], label=label, mig=True))
    return [device for gpu, slices in gpus for device in (slices or [gpu])]


def nvidia_smi_devices() -> DeviceList:
    """The devices ``nvidia-smi -L`` lists (none when the tool is missing or fails)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return DeviceList((), "nvidia-smi is not on PATH")
    try:
        result = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return DeviceList((), f"nvidia-smi -L failed ({exc})")
    if result.returncode != 0:
        return DeviceList((), f"nvidia-smi -L failed: {result.stderr.strip() or result.returncode}")
    return DeviceList(tuple(parse_nvidia_smi_list(result.stdout)), "nvidia-smi -L")


def visible_devices(environ: Mapping[str, str] | None = None) -> DeviceList:
    """The devices this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else ``nvidia-smi -L``."""
    environ = os.environ if environ is None else environ
    inherited = environ.get("CUDA_VISIBLE_DEVICES")
    if inherited is None:
        return nvidia_smi_devices()
    source = f"CUDA_VISIBLE_DEVICES={inherited}"
    ids: list[str] = []
    for entry in (part.strip() for part in inherited.split(",")):
        if entry in _NO_DEVICES or entry.startswith("-"):
            break  # CUDA stops reading the list at the first invalid entry
        ids.append(entry)
    return DeviceList(tuple(GPUDevice(id=i, mig=i.startswith("MIG-")) for i in ids), source)


def detect_device(python: str = sys.executable) -> Literal["cpu", "gpu"]:
    """What ``--device auto`` means for ``python``'s vLLM.

    The CPU build means ``cpu``. Another build is asked for its platform (CUDA or ROCm mean
    ``gpu``). Without vLLM (a dry run) the visible devices decide.
    """
    install = probe_install(python)
    if install.build == "cpu":
        return "cpu"
    if install.build == "gpu":
        platform = vllm_platform(python)
        if platform in ("cuda", "rocm"):
            return "gpu"
        if platform is None:
            logger.warning("could not ask %s for its platform; assuming a GPU build", install.describe())
            return "gpu"
        return "cpu"
    return "gpu" if len(visible_devices()) else "cpu"
