"""A finished mcq_refine run on the fake endpoint (kept, rejected and failed items; judge step flags)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.inspect.conftest import make_run


@pytest.fixture(scope="session")
def refine_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared: do not modify."""
    return make_run(tmp_path_factory.mktemp("export-runs"), limit=8)
