"""Load a graph spec from YAML, apply ``key=value`` overrides, report errors by file and key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from medloom.core.errors import ConfigError
from medloom.graphs.spec import GraphSpec


def apply_override(data: dict[str, Any], assignment: str, *, file: str | None = None) -> None:
    """Set ``a.b.c=value`` in ``data``; the value is parsed as YAML (``3``, ``[a, b]``).

    A ``*`` segment stands for every entry of a mapping or list: ``models.*.mode=chat`` switches
    every model alias of a recipe, whatever the recipe calls them.
    """
    if "=" not in assignment:
        raise ConfigError(f"override '{assignment}' must look like key.path=value", file=file)
    key, _, raw = assignment.partition("=")
    key = key.strip()
    parts = [p for p in key.split(".") if p]
    if not parts:
        raise ConfigError(f"override '{assignment}' has an empty key", file=file)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse value '{raw}': {exc}", file=file, key=key) from exc
    _assign(data, parts, value, key=key, file=file)


def _assign(target: Any, parts: list[str], value: Any, *, key: str, file: str | None) -> None:
    for i, part in enumerate(parts[:-1]):
        if part == "*":
            for child in _entries(target, key, file):
                _assign(child, parts[i + 1 :], value, key=key, file=file)
            return
        if isinstance(target, list):
            target = _list_index(target, part, key, file)
            continue
        if not isinstance(target, dict):
            raise ConfigError("cannot set a key inside a non-mapping value", file=file, key=key)
        if target.get(part) is None:  # missing, or an empty YAML mapping ("output:")
            target[part] = {}
        target = target[part]
    last = parts[-1]
    if last == "*":
        slots: list[Any] = (
            list(target) if isinstance(target, dict) else list(range(len(_entries(target, key, file))))
        )
    else:
        slots = [last]
    for slot in slots:
        if isinstance(target, list):
            index = int(slot) if str(slot).isdigit() else -1
            if not 0 <= index < len(target):
                raise ConfigError(f"no list element {slot}", file=file, key=key)
            target[index] = copy.deepcopy(value)
        elif isinstance(target, dict):
            target[slot] = copy.deepcopy(value)
        else:
            raise ConfigError("cannot set a key inside a non-mapping value", file=file, key=key)


def _entries(target: Any, key: str, file: str | None) -> list[Any]:
    """The entries a ``*`` segment stands for."""
    if isinstance(target, dict):
        return list(target.values())
    if isinstance(target, list):
        return list(target)
    raise ConfigError(
        "'*' stands for the entries of a mapping or list, and there is none here", file=file, key=key
    )


def _list_index(target: list[Any], part: str, key: str, file: str | None) -> Any:
    if not part.isdigit() or int(part) >= len(target):
        raise ConfigError(f"list has no element {part}", file=file, key=key)
    return target[int(part)]


def load_raw(path: str | Path) -> dict[str, Any]:
    """The YAML mapping in ``path``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}", file=path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (byte {exc.start}); save the recipe as UTF-8 YAML", file=path
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"invalid YAML{where}: {getattr(exc, 'problem', exc)}", file=path) from exc
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping (name:, models:, nodes:, ...)", file=path)
    return data


def validate_spec(data: dict[str, Any], *, file: str | Path | None = None) -> GraphSpec:
    """A GraphSpec, or a ConfigError naming the first bad key (and how many more there are)."""
    if ("dataset" in data) == ("source" in data):
        raise ConfigError(
            "give exactly one of 'dataset' (read items from a file or the Hub) or 'source' "
            "(make items, e.g. from a knowledge graph)",
            file=file,
            key="dataset",
        )
    try:
        return GraphSpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        key = _key_of(tuple(first["loc"]))
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see the config reference in README.md)"
        elif first["type"] == "missing":
            message = "required key is missing"
        more = (
            f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
            if len(errors) > 1
            else ""
        )
        raise ConfigError(f"{message}{more}", file=file, key=key or None) from None


def load_spec(path: str | Path, overrides: list[str] | None = None) -> GraphSpec:
    """Read, override and validate a recipe file (structure checks come with ``build_graph``)."""
    data = load_raw(path)
    for assignment in overrides or []:
        apply_override(data, assignment, file=str(path))
    return validate_spec(data, file=path)


def _key_of(loc: tuple[Any, ...]) -> str:
    """A dotted key from a pydantic error location, without union member names."""
    parts: list[str] = []
    for p in loc:
        if isinstance(p, str) and p[:1].isupper():
            continue  # a union member's class name
        parts.append(str(p))
    return ".".join(parts)
