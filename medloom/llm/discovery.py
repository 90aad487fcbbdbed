"""What each endpoint serves (``GET /models``), asked once before a run, with errors that say
which URL is wrong and how to fix it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from medloom.core.errors import ConfigError, FatalLLMError, LLMError
from medloom.llm.client import LLMClient
from medloom.llm.pool import EndpointState
from medloom.llm.redact import redact_error

log = logging.getLogger("medloom")


@dataclass(frozen=True)
class Served:
    """An endpoint's model list, or why it is unknown."""

    endpoint: str
    base_url: str
    models: list[str] | None
    problem: str | None = None

    def where(self) -> str:
        return f"{self.endpoint} ({self.base_url})"


async def served_models(client: LLMClient, *, route: bool = False) -> dict[str, Served]:
    """Each endpoint's served models: its configured ``models``, else what ``/models`` lists (with
    ``route``, calls then go only to endpoints listing their model; without it, a model an endpoint
    does not list, such as an embedding model, still reaches it).

    A wrong base URL (an HTML page) or a rejected key is a ConfigError; an endpoint that is down or
    has no ``/models`` is only unknown (its problem is kept for the caller's message)."""
    found: dict[str, Served] = {}
    for ep in client.pool.endpoints:
        if ep.config.models is not None:
            found[ep.name] = Served(ep.name, ep.config.base_url, list(ep.config.models))
            continue
        found[ep.name] = await _ask(client, ep, route)
    return found


async def _ask(client: LLMClient, ep: EndpointState, route: bool) -> Served:
    where = f"endpoint {ep.name} ({ep.config.base_url})"
    try:
        try:
            page = await client.dispatcher.request(ep, "GET", "/models")
        except LLMError as err:
            redact_error(err, client.dispatcher.secrets())  # a server may quote the key back
            raise
        models = [str(m["id"]) for m in page.get("data") or []]
    except FatalLLMError as err:
        if err.status in (401, 403):
            key = ep.config.api_key_env
            fix = f"check the key in ${key}" if key else "give its key with --api-key-env NAME"
            raise ConfigError(f"{where} rejected the API key: {err}; {fix}") from None
        if err.status != 404:  # an HTML page where the API should be: the URL is wrong
            raise ConfigError(f"{where}: {err}") from None
        return Served(ep.name, ep.config.base_url, None, str(err))
    except LLMError as err:
        log.warning("%s: cannot list its models (%s)", where, err)
        return Served(ep.name, ep.config.base_url, None, str(err))
    except (KeyError, TypeError, AttributeError) as exc:
        return Served(ep.name, ep.config.base_url, None, f"unexpected /models reply ({exc!r})")
    if route:
        ep.discovered_models = models
    return Served(ep.name, ep.config.base_url, models)


def check_served(alias: str, served: str, wanted: list[str], listed: dict[str, Served]) -> None:
    """Raise when every endpoint the model may use lists its models and none lists ``served``."""
    known = [listed[name] for name in wanted if name in listed]
    if not known or any(s.models is None for s in known) or any(served in (s.models or []) for s in known):
        return
    offered = sorted({m for s in known for m in s.models or []})
    where = ", ".join(s.where() for s in known)
    fix = f"--set models.{alias}.model={offered[0]}" if offered else f"a model served at {where}"
    raise ConfigError(
        f"model '{served}' is not served by {where}, which serve{'s' if len(known) == 1 else ''}: "
        f"{', '.join(offered) or 'nothing'}; use {fix}",
        key=f"models.{alias}.model",
    )
