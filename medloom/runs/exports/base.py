"""What every training export returns: its rows, their features, what was skipped and how rows were made."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import datasets

from medloom.runs.exports.layout import ExportOptions

TEXT = datasets.Value("string")
MESSAGES = datasets.List({"role": TEXT, "content": TEXT})
TOOL_CALL = {"id": TEXT, "type": TEXT, "function": {"name": TEXT, "arguments": TEXT}}
TOOL_MESSAGES = datasets.List(
    {"role": TEXT, "content": TEXT, "tool_calls": datasets.List(TOOL_CALL), "tool_call_id": TEXT}
)
"""Messages of tool-using agents (OpenAI chat schema: assistant ``tool_calls``, ``tool`` turns)."""


def text_or_messages(options: ExportOptions) -> datasets.Value | datasets.List:
    """The feature of a prompt or completion column in the chosen layout."""
    return MESSAGES if options.layout == "conversational" else TEXT


@dataclass
class ExportRows:
    rows: list[dict[str, Any]]
    features: datasets.Features
    method: str
    """How the rows were made (a paragraph of the dataset card)."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Why traces or items were left out, with counts."""

    def dataset(self) -> datasets.Dataset:
        if not self.rows:
            return datasets.Dataset.from_dict({k: [] for k in self.features}, features=self.features)
        return datasets.Dataset.from_list(self.rows, features=self.features)
