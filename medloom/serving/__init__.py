"""vLLM serving: the embedded default (a prepared Gemma 3 270M on vLLM's CPU build) and
``medloom serve`` (replicas on CPUs or GPU groups), each server supervised so it never outlives medloom.

Modules by concern: :mod:`~medloom.serving.install` (which vLLM build an interpreter has),
:mod:`~medloom.serving.devices` (CUDA_VISIBLE_DEVICES, nvidia-smi, MIG), :mod:`~medloom.serving.layout`
(TP/PP groups, ports), :mod:`~medloom.serving.supervision` (parent-death signal, watchdog,
descendant sweep), :mod:`~medloom.serving.server`, :mod:`~medloom.serving.group`,
:mod:`~medloom.serving.command` (the CLI), :mod:`~medloom.serving.model_prep` and
:mod:`~medloom.serving.embedded`. This package imports nothing of medloom but its errors, and
nothing here imports vLLM, torch or transformers until it is used.
"""

from medloom.serving.command import ServeOptions, run_serve_command, serve_forever
from medloom.serving.devices import (
    DeviceList,
    GPUDevice,
    detect_device,
    parse_nvidia_smi_list,
    visible_devices,
)
from medloom.serving.errors import (
    DeviceError,
    LayoutError,
    ModelPreparationError,
    ServerExitedError,
    ServerStartError,
    ServingError,
    VLLMNotInstalledError,
)
from medloom.serving.group import ServerGroup, plan_replicas
from medloom.serving.install import VLLMInstall, probe_install, vllm_importable
from medloom.serving.model_prep import (
    DEFAULT_MODEL_NAME,
    default_model_cache_dir,
    default_model_dir,
    is_prepared,
    prepare_default_model,
)
from medloom.serving.server import ServerConfig, VLLMServer, free_port

__all__ = [
    "DEFAULT_MODEL_NAME",
    "DeviceError",
    "DeviceList",
    "GPUDevice",
    "LayoutError",
    "ModelPreparationError",
    "ServeOptions",
    "ServerConfig",
    "ServerExitedError",
    "ServerGroup",
    "ServerStartError",
    "ServingError",
    "VLLMInstall",
    "VLLMNotInstalledError",
    "VLLMServer",
    "default_model_cache_dir",
    "default_model_dir",
    "detect_device",
    "free_port",
    "is_prepared",
    "parse_nvidia_smi_list",
    "plan_replicas",
    "prepare_default_model",
    "probe_install",
    "run_serve_command",
    "serve_forever",
    "visible_devices",
    "vllm_importable",
]
