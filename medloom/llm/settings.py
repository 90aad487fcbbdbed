"""Configuration of LLM access: endpoints, retries, health, rate limits, cache, prices."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from medloom.core.errors import ConfigError
from medloom.core.usage import Price


class EndpointConfig(BaseModel):
    """One OpenAI-compatible base URL. The API key is read from ``api_key_env`` at call time."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    base_url: str
    api_key_env: str | None = None
    models: list[str] | None = None
    """Served model names; ``None`` means: whatever the server lists (or any name asked for)."""
    max_concurrency: int = Field(default=32, ge=1)
    supports_n: bool = True
    structured_output: Literal["none", "openai", "vllm"] = "none"
    timeout_s: float = Field(default=120.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"'{value}' is not an http(s) URL, e.g. http://127.0.0.1:8000/v1")
        return value.rstrip("/")

    def api_key(self) -> str:
        """The key from the environment; a placeholder for servers that need none."""
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                where = f"'{self.name}' ({self.base_url})" if self.name else self.base_url
                raise ConfigError(
                    f"environment variable {self.api_key_env} is not set (the API key of endpoint "
                    f"{where}): export {self.api_key_env}=YOUR_KEY, or drop api_key_env for a "
                    "server that needs no key"
                )
            return key
        return "EMPTY"

    def label(self) -> str:
        return self.name or self.base_url


def check_api_keys(endpoints: list[EndpointConfig]) -> None:
    """Raise a ConfigError naming the variable and the endpoint when a key variable is not set."""
    for endpoint in endpoints:
        endpoint.api_key()


class RetrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=6, ge=1)
    initial_backoff_s: float = Field(default=0.5, ge=0)
    max_backoff_s: float = Field(default=30.0, ge=0)
    max_retry_after_s: float = Field(default=120.0, ge=0)


class HealthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    failures_to_eject: int = Field(default=3, ge=1)
    """Consecutive connection/5xx failures after which an endpoint leaves the rotation."""
    probe_after_s: float = Field(default=5.0, ge=0)
    """How long an ejected endpoint rests before one probe request is let through."""


Routing = Literal["sticky", "least_outstanding"]


class CacheSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    path: str | None = None
    """SQLite file; default ``<runs_dir>/.cache/llm.sqlite``, shared by runs."""


class LLMSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate_limit_rps: float | None = Field(default=None, gt=0)
    routing: Routing = "sticky"
    """How calls pick an endpoint among several. ``sticky``: the calls of one item go to one
    endpoint (chosen by hashing the item id) while it is in rotation and not overloaded, so
    the server's prefix cache holds the item's shared prompt parts; otherwise least
    outstanding. ``least_outstanding``: every call to the endpoint with the fewest in flight."""
    sticky_slack: int = Field(default=4, ge=0)
    """``sticky``: an item's endpoint counts as overloaded, and the call goes to the least busy
    endpoint instead, when it has more than this many calls in flight beyond the least busy one."""
    retry: RetrySettings = Field(default_factory=RetrySettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    prices: dict[str, Price] = Field(default_factory=dict)
    """Per served model name."""
