"""`--endpoint`, `--api-key-env`, `--endpoint-concurrency` and `--set` compose on a config dict."""

from __future__ import annotations

from typing import Any

import pytest

from medloom.core.errors import ConfigError
from medloom.graphs.loader import validate_spec
from medloom.runs.runner import prepare_config

URL = "https://api.example.com/v1"


def _config(endpoints: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "t",
        "models": {"gen": {"mode": "chat", "endpoints": ["api"]}},
        "dataset": {"path": "x.jsonl"},
        "nodes": {"generate": {"type": "generator", "models": ["gen"], "template": "mcq_cot"}},
    }
    if endpoints is not None:
        data["endpoints"] = endpoints
    return data


def test_endpoint_inherits_the_key_variable_and_settings_of_the_only_configured_endpoint() -> None:
    raw = _config([{"name": "api", "base_url": "https://other/v1", "api_key_env": "K", "supports_n": False}])
    data = prepare_config(raw, file="f.yaml", endpoints=[URL])
    assert data["endpoints"] == [{"name": "cli0", "base_url": URL, "api_key_env": "K", "supports_n": False}]
    assert "endpoints" not in data["models"]["gen"]  # pinned to an endpoint that is gone
    validate_spec(data, file="f.yaml")


def test_endpoint_with_the_same_url_takes_that_endpoints_settings() -> None:
    raw = _config(
        [
            {"name": "local", "base_url": "http://127.0.0.1:8000/v1", "max_concurrency": 4},
            {"name": "api", "base_url": URL + "/", "api_key_env": "K"},
        ]
    )
    data = prepare_config(raw, file="f.yaml", endpoints=[URL, "http://127.0.0.1:8000/v1"])
    assert data["endpoints"][0] == {"name": "cli0", "base_url": URL, "api_key_env": "K"}
    assert data["endpoints"][1]["max_concurrency"] == 4 and "api_key_env" not in data["endpoints"][1]


def test_an_unknown_url_among_endpoints_with_different_keys_asks_for_api_key_env() -> None:
    raw = _config([{"base_url": "https://a/v1", "api_key_env": "A"}, {"base_url": "https://b/v1"}])
    with pytest.raises(ConfigError, match="--api-key-env NAME"):
        prepare_config(raw, file="f.yaml", endpoints=[URL])
    data = prepare_config(raw, file="f.yaml", endpoints=[URL], api_key_env="B")
    assert data["endpoints"][0]["api_key_env"] == "B"
    data = prepare_config(raw, file="f.yaml", endpoints=[URL], api_key_env="")
    assert data["endpoints"][0]["api_key_env"] is None


def test_api_key_env_without_endpoint_is_an_error() -> None:
    with pytest.raises(ConfigError, match="give --endpoint too"):
        prepare_config(_config(), file="f.yaml", api_key_env="K")


def test_set_refines_the_command_line_endpoint_and_endpoint_concurrency_raises_the_cap() -> None:
    data = prepare_config(
        _config(),
        file="f.yaml",
        endpoints=[URL],
        overrides=["endpoints.0.timeout_s=5", "models.gen.endpoints=[cli0]"],
        concurrency=64,
        endpoint_concurrency=64,
    )
    spec = validate_spec(data, file="f.yaml")
    assert spec.endpoints[0].timeout_s == 5 and spec.endpoints[0].max_concurrency == 64
    assert spec.models["gen"].endpoints == ["cli0"] and spec.run.concurrency == 64
    with pytest.raises(ConfigError, match="at least 1"):
        prepare_config(_config(), file="f.yaml", endpoints=[URL], endpoint_concurrency=0)
