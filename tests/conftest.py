"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from medloom.testing.fake_openai import FakeOpenAIServer
from medloom.testing.mcq_student import McqStudent
from tests.vllm_fixtures import prepared_model_dir, vllm_server

# One real vLLM server per test session, shared by every integration test.
__all__ = ["prepared_model_dir", "student_server", "vllm_server"]


@pytest.fixture
def student_server() -> Iterator[FakeOpenAIServer]:
    """A fake endpoint playing a deterministic MCQ student (generator, judge, refiner)."""
    with FakeOpenAIServer(McqStudent()) as srv:
        yield srv
