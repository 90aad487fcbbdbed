"""Notice a recipe file edited between a run's start and its resume, and apply the edit on request."""

from __future__ import annotations

import copy
from typing import Any

from medloom.core.errors import ConfigError

_MISSING = object()


KeyPath = tuple[str, ...]


def changed_keys(old: Any, new: Any, prefix: KeyPath = ()) -> list[KeyPath]:
    """Key paths where two loaded configs differ (mappings are compared key by key, other values
    such as lists as a whole)."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys: list[KeyPath] = []
        for key in [*old, *(k for k in new if k not in old)]:
            keys += changed_keys(old.get(key, _MISSING), new.get(key, _MISSING), (*prefix, str(key)))
        return keys
    return [] if old == new else [prefix]


def dotted(key: KeyPath) -> str:
    return ".".join(key) or "(the whole config)"


def apply_changes(
    snapshot: dict[str, Any], new_source: dict[str, Any], keys: list[KeyPath]
) -> dict[str, Any]:
    """The run's config snapshot with the keys that changed in the file set to their new values
    (overrides given on the command line to other keys are kept)."""
    result = copy.deepcopy(snapshot)
    for parts in keys:
        if not parts:
            return copy.deepcopy(new_source)
        value = _lookup(new_source, parts)
        parent = result
        for part in parts[:-1]:
            child = parent.get(part)
            if not isinstance(child, dict):
                child = parent[part] = {}
            parent = child
        if value is _MISSING:
            parent.pop(parts[-1], None)
        else:
            parent[parts[-1]] = copy.deepcopy(value)
    return result


def _lookup(data: Any, parts: KeyPath) -> Any:
    for part in parts:
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data


class ConfigChanged(ConfigError):
    """The recipe file differs from the one the run was made with."""

    def __init__(self, file: str, run_id: str, keys: list[KeyPath]):
        self.keys = [dotted(k) for k in keys]
        shown = ", ".join(self.keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
        super().__init__(
            f"changed since run {run_id} started ({shown}); resuming would mix two configs. "
            "Pass --accept-config-change to resume with the edited keys, or start a new run "
            "(without --resume)",
            file=file,
        )
