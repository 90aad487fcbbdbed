"""Test doubles for medloom: an OpenAI-compatible fake HTTP server.

Names are imported lazily so ``python -m medloom.testing.fake_openai`` runs cleanly and
importing :mod:`medloom.testing` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medloom.testing.fake_openai import (
        DownMode,
        FakeOpenAIServer,
        FakeRequest,
        Matcher,
        Reply,
        ReplyLike,
        Responder,
        Rule,
        ScriptedResponder,
        echo_responder,
    )

__all__ = [
    "DownMode",
    "FakeOpenAIServer",
    "FakeRequest",
    "Matcher",
    "Reply",
    "ReplyLike",
    "Responder",
    "Rule",
    "ScriptedResponder",
    "echo_responder",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("medloom.testing.fake_openai"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
