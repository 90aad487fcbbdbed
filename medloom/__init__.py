"""medloom: multi-agent clinical reasoning and data synthesis.

The everyday entry points are importable from here::

    import medloom
    result = medloom.run("configs/mcq_refine.yaml", endpoints=["http://127.0.0.1:8000/v1"])
    result.dataset, result.report, result.run_dir
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "run": "medloom.runs.runner",
    "arun": "medloom.runs.runner",
    "RunResult": "medloom.runs.runner",
    "training_dataset": "medloom.runs.exports",
    "load_spec": "medloom.graphs.loader",
    "build_graph": "medloom.graphs.build",
    "GraphSpec": "medloom.graphs.spec",
    "LLMClient": "medloom.llm.client",
    "LLMRequest": "medloom.core.calls",
    "EndpointConfig": "medloom.llm.settings",
    "Agent": "medloom.agents.agent",
    "ModelRef": "medloom.agents.agent",
    "Generator": "medloom.agents.roles",
    "Refiner": "medloom.agents.roles",
    "AgentContext": "medloom.agents.context",
    "Item": "medloom.core.records",
    "Trace": "medloom.core.records",
    "Verdict": "medloom.core.records",
}

if TYPE_CHECKING:
    from medloom.agents.agent import Agent, ModelRef
    from medloom.agents.context import AgentContext
    from medloom.agents.roles import Generator, Refiner
    from medloom.core.calls import LLMRequest
    from medloom.core.records import Item, Trace, Verdict
    from medloom.graphs.build import build_graph
    from medloom.graphs.loader import load_spec
    from medloom.graphs.spec import GraphSpec
    from medloom.llm.client import LLMClient
    from medloom.llm.settings import EndpointConfig
    from medloom.runs.exports import training_dataset
    from medloom.runs.runner import RunResult, arun, run


def __getattr__(name: str) -> Any:
    """Import the public names lazily, so ``import medloom`` stays fast."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'medloom' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "Agent",
    "AgentContext",
    "EndpointConfig",
    "Generator",
    "GraphSpec",
    "Item",
    "LLMClient",
    "LLMRequest",
    "ModelRef",
    "Refiner",
    "RunResult",
    "Trace",
    "Verdict",
    "arun",
    "build_graph",
    "load_spec",
    "run",
    "training_dataset",
]
