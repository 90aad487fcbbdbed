"""The one registry of named building blocks: node kinds, ops, item sources, checks, selector
methods, the note kinds ops declare, and the tools agents call.

Built-in modules register themselves on import (``@register("op", "summarise")``); the
registry imports them on the first lookup. Plugins expose a module (or a ``setup(registry)``
function) in the ``medloom.plugins`` entry-point group; loading it registers what it defines::

    [project.entry-points."medloom.plugins"]
    my_ops = "my_package.medloom_ops"

The older groups ``medloom.steps`` (ops) and ``medloom.sources`` (sources), which name one
object each, are still read.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Literal, TypeVar

Kind = Literal["node", "op", "source", "check", "selector", "note", "tool"]
KINDS: tuple[Kind, ...] = ("node", "op", "source", "check", "selector", "note", "tool")

ENTRY_POINT_GROUP = "medloom.plugins"
LEGACY_GROUPS: dict[str, Kind] = {"medloom.steps": "op", "medloom.sources": "source"}

BUILTIN_PACKAGES: tuple[str, ...] = (
    "medloom.nodes",
    "medloom.ops",
    "medloom.verifiers",
    "medloom.agents.tools",
)
"""Packages whose modules register the built-ins (imported by name on first lookup, so this
bottom layer never imports the layers above it)."""

T = TypeVar("T")


class UnknownName(KeyError):
    """A name no module registered; the message lists the known ones."""

    def __init__(self, kind: Kind, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        super().__init__(name)

    def __str__(self) -> str:
        listed = ", ".join(self.known) or "none installed"
        return f"unknown {_LABELS[self.kind]} '{self.name}' ({_PLURALS[self.kind]}: {listed})"


_LABELS = {
    "node": "node type",
    "op": "op",
    "source": "source",
    "check": "check",
    "selector": "method",
    "note": "note kind",
    "tool": "tool",
}
_PLURALS = {
    "node": "types",
    "op": "ops",
    "source": "sources",
    "check": "checks",
    "selector": "methods",
    "note": "note kinds",
    "tool": "tools",
}


class Registry:
    """Named entries per kind; built-ins and plugins are loaded once, on first use."""

    def __init__(self, packages: tuple[str, ...] = BUILTIN_PACKAGES):
        self._entries: dict[Kind, dict[str, Any]] = {kind: {} for kind in KINDS}
        self._packages = packages
        self._loaded = False
        self._lock = threading.RLock()

    def register(self, kind: Kind, name: str) -> Callable[[T], T]:
        """Decorator: make ``obj`` known as ``name`` (a later registration replaces an earlier one)."""

        def wrap(obj: T) -> T:
            self.add(kind, name, obj)
            return obj

        return wrap

    def add(self, kind: Kind, name: str, obj: Any) -> None:
        if kind not in self._entries:
            raise ValueError(f"unknown registry kind '{kind}' (kinds: {', '.join(KINDS)})")
        self._entries[kind][name] = obj

    def get(self, kind: Kind, name: str) -> Any:
        entries = self.all(kind)
        if name not in entries:
            raise UnknownName(kind, name, sorted(entries))
        return entries[name]

    def all(self, kind: Kind) -> dict[str, Any]:
        """Every entry of ``kind`` (built-in, registered, and from installed plugins)."""
        self.load()
        return self._entries[kind]

    def load(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            for package in self._packages:
                _import_package(package)
            self.load_plugins()

    def load_plugins(self) -> None:
        """Load the installed plugins (``medloom.plugins``, and the older per-kind groups)."""
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            loaded = ep.load()
            if callable(loaded) and not isinstance(loaded, ModuleType):
                loaded(self)
        for group, kind in LEGACY_GROUPS.items():
            for ep in entry_points(group=group):
                self._entries[kind].setdefault(ep.name, ep.load())

    def remove(self, kind: Kind, name: str) -> None:
        """Forget ``name`` (tests that register temporary entries clean up with this)."""
        self._entries[kind].pop(name, None)


def _import_package(name: str) -> None:
    package = importlib.import_module(name)
    for info in sorted(pkgutil.iter_modules(getattr(package, "__path__", [])), key=lambda m: m.name):
        importlib.import_module(f"{name}.{info.name}")


REGISTRY = Registry()
"""The process-wide registry."""

register = REGISTRY.register
