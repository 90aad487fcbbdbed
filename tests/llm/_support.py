"""Helpers shared by the LLM-layer tests (settings and endpoint configs for fake servers)."""

from __future__ import annotations

from typing import Any

from medloom.llm import EndpointConfig, LLMSettings, RetrySettings
from medloom.llm.settings import HealthSettings
from medloom.testing.fake import FakeOpenAIServer

FAST_RETRY = RetrySettings(initial_backoff_s=0.01, max_backoff_s=0.05)
FAST_HEALTH = HealthSettings(probe_after_s=0.2)


def fast_settings(**overrides: Any) -> LLMSettings:
    """LLM settings whose retries and probes take milliseconds, not seconds."""
    values: dict[str, Any] = {"retry": FAST_RETRY, "health": FAST_HEALTH}
    values.update(overrides)
    return LLMSettings(**values)


def endpoint(srv: FakeOpenAIServer, name: str = "", **kwargs: Any) -> EndpointConfig:
    """An endpoint config pointing at a fake server."""
    return EndpointConfig(name=name, base_url=srv.base_url, **kwargs)
