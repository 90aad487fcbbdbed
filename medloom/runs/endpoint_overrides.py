"""Command-line endpoints (``--endpoint``, ``--api-key-env``, ``--endpoint-concurrency``) applied to
a config dict.

``--endpoint URL`` replaces the config's endpoint list but keeps what the config says about how to
call it: the endpoint with the same URL, or else the settings all configured endpoints share
(``api_key_env`` above all: a hosted API must still receive its key). ``--api-key-env NAME`` gives
the key variable when the config has no endpoint (or overrides it; ``''`` means no key).
"""

from __future__ import annotations

from typing import Any

from medloom.core.errors import ConfigError

INHERITED = ("api_key_env", "supports_n", "structured_output", "timeout_s", "max_concurrency")
"""Endpoint settings a command-line URL takes over from the config (never its name or model list)."""


def apply_endpoint_urls(
    data: dict[str, Any],
    urls: list[str],
    *,
    api_key_env: str | None = None,
    file: str | None = None,
) -> None:
    """Replace ``data['endpoints']`` with ``urls`` (named ``cli0``, ``cli1``…), inheriting settings."""
    configured = [e for e in data.get("endpoints") or [] if isinstance(e, dict)]
    endpoints = []
    for i, url in enumerate(urls):
        same = [e for e in configured if _norm(e.get("base_url")) == _norm(url)]
        inherited = _settings(same[:1]) if same else _shared_settings(configured, url, api_key_env, file)
        endpoint: dict[str, Any] = {"name": f"cli{i}", "base_url": url, **inherited}
        if api_key_env is not None:  # "" = explicitly no key
            endpoint["api_key_env"] = api_key_env or None
        endpoints.append(endpoint)
    data["endpoints"] = endpoints
    for model in (data.get("models") or {}).values():
        if isinstance(model, dict):
            model.pop("endpoints", None)  # they named the config's endpoints, which are gone


def apply_endpoint_concurrency(data: dict[str, Any], concurrency: int, *, file: str | None = None) -> None:
    """Set every endpoint's ``max_concurrency`` (calls in flight per endpoint)."""
    if concurrency < 1:
        raise ConfigError(f"--endpoint-concurrency must be at least 1, got {concurrency}", file=file)
    for endpoint in data.get("endpoints") or []:
        if isinstance(endpoint, dict):
            endpoint["max_concurrency"] = concurrency


def _norm(url: object) -> str:
    return str(url or "").rstrip("/")


def _settings(endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: endpoints[0][k] for k in INHERITED if k in endpoints[0]}


def _shared_settings(
    configured: list[dict[str, Any]], url: str, api_key_env: str | None, file: str | None
) -> dict[str, Any]:
    """The settings every configured endpoint agrees on; a disagreement on the key is an error."""
    shared: dict[str, Any] = {}
    for key in INHERITED:
        values = {repr(e.get(key)) for e in configured}
        if len(values) == 1 and configured[0].get(key) is not None:
            shared[key] = configured[0][key]
        elif key == "api_key_env" and len(values) > 1 and api_key_env is None:
            names = sorted({str(e.get(key)) for e in configured if e.get(key)})
            raise ConfigError(
                f"--endpoint {url}: the config's endpoints use different API key variables "
                f"({', '.join(names)}); say which with --api-key-env NAME "
                "(or --api-key-env '' for a server that needs no key)",
                file=file,
                key="endpoints",
            )
    return shared
