"""Test doubles for medloom: fake OpenAI-compatible endpoints (:mod:`medloom.testing.fake`)
and a deterministic MCQ student (:mod:`medloom.testing.mcq_student`).

Names are imported lazily so importing :mod:`medloom.testing` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medloom.testing.fake import (
        DownMode,
        FakeLLM,
        FakeOpenAIServer,
        FakeRequest,
        Matcher,
        Reply,
        ReplyLike,
        Responder,
        Rule,
        ScriptedResponder,
        by_caller,
        echo_responder,
    )

__all__ = [
    "DownMode",
    "FakeLLM",
    "FakeOpenAIServer",
    "FakeRequest",
    "Matcher",
    "Reply",
    "ReplyLike",
    "Responder",
    "Rule",
    "ScriptedResponder",
    "by_caller",
    "echo_responder",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("medloom.testing.fake"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
